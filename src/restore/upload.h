// VolumeUploader: a restored claim's bytes from the repository copy
// (`backup create --copy-data`) into a CDI upload DataVolume of the target
// cluster (kubevirt/cdi_upload.h; docs/restore.md "From the repository").
//
// Per volume: wait for the DataVolume's UploadReady, ask for an upload token,
// POST the image to the upload proxy's /v1beta1/upload-async as one streamed
// body read straight from the repository (Repository::read: no temporary
// image file anywhere), SHA-256 computed on the way, then wait for
// Succeeded. CDI cannot resume: a failed attempt (connection lost, 5xx) is
// sent again from byte 0 with a fresh token, once; then the volume fails with
// both reasons. 401/400/409 are not retried (nothing a resend fixes).
//
// Truth: the claim's record gets the SHA-256 of the bytes sent, which must
// equal the backup's DataCopyRecord.sha256, else the volume fails (the
// repository authenticates every blob, so this catches a mismatched record).
//
// Threads: upload() may run for different volumes at once; the repository
// and the client are thread-safe; the transport pool is shared.
#pragma once

#include "common/error.h"
#include "kube/client.h"
#include "record/backup_record.h"
#include "restore/record.h"
#include "restore/spec.h"

#include <memory>
#include <stop_token>
#include <string>

namespace kvb::repo {
class Repository;
}

namespace kvb::restore {

class VolumeUploader {
 public:
  virtual ~VolumeUploader() = default;
  // The DataVolume ns/claim exists; fills rec's upload fields.
  virtual Status upload(const std::string& ns, const std::string& claim, const record::DataCopyRecord& copy, ClaimRecord& rec,
                        std::stop_token stop) = 0;
};

// Checks what can be checked before anything is created: the upload proxy's
// URL (spec.upload_proxy_url, else CDIConfig), its CA file, and that every
// repository snapshot the plan needs is in the repository.
Result<std::unique_ptr<VolumeUploader>> make_volume_uploader(std::shared_ptr<kube::Client> client,
                                                             std::shared_ptr<repo::Repository> repository, const RestoreSpec& spec);

// Whether the repository holds every repository snapshot in `ids`; the
// error names the first one missing.
Status check_repository_snapshots(repo::Repository& repository, const std::vector<std::pair<std::string, std::string>>& ids);

}  // namespace kvb::restore
