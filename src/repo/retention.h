// Retention: which snapshots forget keeps (docs/repository.md, "Forget and prune").
//
// Snapshots are grouped by name; within a group, newest first, keep-last N
// keeps the N newest, keep-daily N the newest of each of the N latest days
// that have a snapshot, and likewise keep-weekly (ISO weeks) and
// keep-monthly. A snapshot is kept when any rule keeps it.
//
// Invariants: a policy with no rule keeps everything (forgetting all of a
// repository takes explicit snapshot ids, never an empty policy); the result
// depends only on the snapshots' names and times (UTC).
#pragma once

#include "common/error.h"
#include "repo/snapshot.h"

#include <string>
#include <vector>

namespace kvb::repo {

struct RetentionPolicy {
  int last = 0, daily = 0, weekly = 0, monthly = 0;
  bool empty() const { return last <= 0 && daily <= 0 && weekly <= 0 && monthly <= 0; }
};

// One entry per snapshot: why it is kept ("last", "daily 2026-11-25", ...), or empty to forget it.
Result<std::vector<std::string>> apply_retention(const std::vector<Snapshot>& snapshots, const RetentionPolicy& policy);

}  // namespace kvb::repo
