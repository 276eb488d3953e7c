// BackupFixture: a test cluster, a local location in its temp dir, and the
// oracle checks every backup test ends with: the record tells the truth (a VM
// is FileSystemConsistent only if the test cluster saw each of its snapshots
// cut while it was frozen) and no VM is left frozen.
#pragma once

#include "record/backup_record.h"
#include "backup/runner.h"
#include "location/location.h"
#include "tests/support/test_cluster.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace kvb::testing {

class BackupFixture {
 public:
  explicit BackupFixture(const std::string& scenario);

  backup::BackupSpec spec(const std::string& name) const;
  Result<record::BackupRecord> run(const backup::BackupSpec& spec, std::stop_token stop = {},
                                   backup::ProgressFn progress = {});

  // The oracle checks: truthful consistency, nothing frozen, journal cleared.
  void expect_truthful(const record::BackupRecord& rec);
  void expect_nothing_frozen();

  const record::VmRecord& vm(const record::BackupRecord& rec, const std::string& name) const;
  // VolumeSnapshots of a backup still in the cluster (label kvbackup.io/backup)
  // and not being deleted.
  size_t snapshots_left(const std::string& backup, const std::string& vm = {});
  // Those deleted but held by their finalizers (deletionTimestamp set).
  std::vector<std::string> snapshots_being_deleted(const std::string& backup, const std::string& vm = {});

  TestCluster tc;
  std::filesystem::path location_dir;
  std::unique_ptr<location::Location> location;
};

}  // namespace kvb::testing
