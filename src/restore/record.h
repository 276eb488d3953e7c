// The restore record: what a restore did, VM by VM, written atomically to
// <location>/restores/<name>/restore.json. It is also the restore's journal:
// rewritten before every step that creates or deletes something, so that
// every object the restore may have created is listed (a killed restore
// never leaves objects no record mentions), and each VM's stage says whether
// the VM in the way may already be gone.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "location/location.h"
#include "restore/spec.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <utility>

#include <optional>
#include <string>
#include <vector>

namespace kvb::restore {

enum class RestorePhase { kInProgress, kCompleted, kPartiallyFailed, kFailed };
std::string_view to_string(RestorePhase p);

// How far one VM's restore got: written before each step, so that an
// interrupted restore can be told apart: before kReplacing nothing of the
// user's was touched (recover rolls back what it created); from kReplacing on
// the VM in the way may be gone (recover completes the restore).
enum class RestoreStage { kPending, kCreating, kReplacing, kCreatingVm, kDone };
std::string_view to_string(RestoreStage s);

// Where a restore's time went, in milliseconds, stage by stage in the order
// the stages ran (JSON: an object "millis"; docs/restore.md "Where the time
// goes"). Empty in records before it existed and for stages not run.
using StageMillis = std::vector<std::pair<std::string, int64_t>>;
// Adds ms to `stage` (appended when new: a stage run twice, e.g. a retried
// upload's token, is their sum).
void add_millis(StageMillis& m, const std::string& stage, int64_t ms);
int64_t millis_of(const StageMillis& m, const std::string& stage);  // 0 when absent

// Milliseconds since it was made or last lapped (steady clock).
class Stopwatch {
 public:
  int64_t lap() {
    auto now = std::chrono::steady_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

struct ClaimRecord {
  std::string volume;          // the volume's name in the VM spec
  std::string claim;           // the restored claim
  std::string source_claim;    // the claim that was backed up
  std::string volume_snapshot; // the snapshot it was restored from (target namespace)
  std::string storage_class;
  std::string size;
  std::string phase;           // Bound, Pending, ...
  // Where the bytes came from: "snapshot" (volume_snapshot) or "repository"
  // (a DataVolume with source.upload fed from repository_snapshot).
  std::string data_source = "snapshot";
  std::string repository_snapshot;
  std::string sha256;          // repository: of the bytes uploaded (equal to the backup's)
  uint64_t uploaded_bytes = 0;
  int upload_attempts = 0;
  int64_t upload_ms = 0;       // the successful attempt, POST start to response
  // repository: uploadReady (DataVolume created to UploadReady), token, transfer
  // (every attempt's POST, start to response), succeeded (response to phase Succeeded).
  StageMillis millis;
};

struct CreatedObject {
  std::string resource;
  std::string ns;
  std::string name;
  bool removed = false;        // cleaned up after a failure
};

// A boot verification (restore/verify.h): a copy of the VM booted in an
// isolated namespace until its guest agent connected, then deleted.
struct VerificationRecord {
  std::string vm;                      // NS/NAME of the VM verified (restored, or in the backup)
  std::string result;                  // Passed | Failed
  double seconds_to_agent_ready = -1;  // from the copy's creation to AgentConnected; -1: never
  std::string reason;                  // why it failed (empty when Passed)
  std::string ns;                      // the isolated namespace it ran in (deleted)
  std::vector<std::string> problems;   // e.g. cleanup that did not finish
};

struct VmRestoreRecord {
  std::string source_ns, source_name;
  std::string ns, name;        // target
  std::string phase = "Pending";  // Completed, Failed, Pending
  RestoreStage stage = RestoreStage::kPending;
  std::string reason;
  std::string run_strategy;
  std::vector<ClaimRecord> claims;
  std::vector<CreatedObject> created;
  std::vector<std::string> replaced;  // "resource ns/name" deleted by --existing replace
  std::vector<std::string> problems;
  std::optional<VerificationRecord> verification;  // restore create --verify
  // configs, snapshots (imported), claims (claims or upload DataVolumes
  // created), uploads (every upload, wall clock), bound, replace, vm (created),
  // running, cleanup (what a failure undid).
  StageMillis millis;
};

struct RestoreRecord {
  std::string name;
  std::string backup;
  std::string kvbackup_version;
  std::string cluster;
  WallTime started{};
  std::optional<WallTime> finished;
  RestorePhase phase = RestorePhase::kInProgress;
  std::string error;
  RestoreSpec options;  // what was asked (name and backup are above)
  std::vector<VmRestoreRecord> vms;
  // plan (the plan, the repository opened and its snapshots checked, the
  // upload proxy found; before startedAt), namespaces, vms.
  StageMillis millis;

  boost::json::object to_json() const;
  static Result<RestoreRecord> from_json(const boost::json::value& v, const std::string& origin);
};

boost::json::object verification_json(const VerificationRecord& v);

// "restores/<name>/restore.json" in a location.
std::string restore_record_path(const std::string& name);
Result<RestoreRecord> load_restore_record(const location::Location& loc, const std::string& name);

}  // namespace kvb::restore
