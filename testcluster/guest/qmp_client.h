// QmpClient: QEMU's machine protocol (QMP) over a Unix socket: the capabilities
// handshake, query-status, a point-in-time disk copy (drive-backup sync=full)
// and quit.
//
// Invariants: command answers are matched by a per-command "id"; events read
// while waiting for an answer are kept (in order) for wait_job(), so a
// BLOCK_JOB_COMPLETED that arrives before its command's answer is not lost. A
// backup job's copy is the disk as it was when start_backup() returned (QEMU
// installs copy-before-write when the job starts): the guest need only stay
// frozen until then. Not thread-safe: QemuGuest serialises calls.
#pragma once

#include "common/error.h"
#include "testcluster/guest/line_socket.h"

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>

namespace kvb::testcluster::guest {

class QmpClient {
 public:
  QmpClient() = default;

  // Reads the greeting and negotiates capabilities.
  static Result<QmpClient> handshake(LineSocket socket, Clock::time_point deadline);

  // query-status: "running", "paused", "shutdown", ...
  Result<std::string> query_status(Clock::time_point deadline);
  // drive-backup of device (the -drive id) to target, raw, sync=full. With
  // create the target file is (re)created by QEMU at the disk's size; without,
  // target must exist and be at least as large.
  Status start_backup(const std::string& device, const std::string& job_id, const std::filesystem::path& target,
                      bool create, Clock::time_point deadline);
  // Until the job's BLOCK_JOB_COMPLETED (an "error" in it fails) or BLOCK_JOB_CANCELLED.
  Status wait_job(const std::string& job_id, Clock::time_point deadline);
  // Sends quit and does not wait for an answer (QEMU may close first).
  Status send_quit(Clock::time_point deadline);
  // Any command; returns "return" serialised as JSON.
  Result<std::string> execute(const std::string& command, const std::string& args_json, Clock::time_point deadline);

 private:
  explicit QmpClient(LineSocket s) : socket_(std::move(s)) {}
  LineSocket socket_;
  std::int64_t next_id_ = 1;
  std::deque<std::string> events_;  // event lines read while waiting for answers
};

}  // namespace kvb::testcluster::guest
