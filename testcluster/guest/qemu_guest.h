// QemuGuest: one real Linux guest under qemu-system-x86_64 (TCG), booted from
// the image scripts/guest-image builds, with the real qemu-guest-agent inside.
// Its data disk (/dev/vda, ext4, mounted on /data) is a raw file the caller
// owns; the guest writes to it flat out (appends with fsync, renames, directory
// churn) so that a copy taken without a freeze is really dirty.
//
// Invariants:
// - QEMU is started from an argv vector, never a shell; its agent and QMP
//   sockets are created (bound and listening) by us in a private short temp dir
//   before QEMU starts and handed to it as descriptors, so connecting never
//   races QEMU's start-up.
// - No orphan QEMU: the child has PR_SET_PDEATHSIG=SIGKILL, which fires when the
//   THREAD that called launch() exits (launch from a thread that lives as long
//   as the guest), and the destructor quits it (SIGKILL after a grace period)
//   and reaps it.
// - No guest left frozen by us: from the moment a freeze is sent until a thaw
//   succeeds the guest counts as possibly frozen, and close() (and so the
//   destructor) thaws it before QEMU quits.
// - A freeze that froze 0 file systems is an error, never a freeze.
// - Every call has a deadline; calls are serialised by a mutex, so the object
//   may be used from several threads.
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>

namespace kvb::testcluster::guest {

class AgentClient;
class QmpClient;

// The files scripts/guest-image builds.
struct GuestImage {
  std::filesystem::path dir;
  std::filesystem::path vmlinuz, initrd, seed_disk, seed_dir;
  // The known file in the seed disk and its content.
  static constexpr const char* kSeedFile = "/kvb-seed.txt";
  static constexpr const char* kSeedContent = "kvbackup test guest seed disk v1\n";

  // $KVB_GUEST_CACHE, else the cache this build was configured with.
  static std::filesystem::path default_dir();
  // Checks that the files are there; the error says to run scripts/guest-image.
  static Result<GuestImage> locate(const std::filesystem::path& dir);
  // A sparse copy of the seed disk at path (a fresh ext4 data disk).
  Status copy_seed_disk(const std::filesystem::path& path) const;
  // Makes the existing file at path (of any size >= 8 MiB) an ext4 disk with the
  // seed content (mke2fs -d: no mount); its size is kept.
  Status format_disk(const std::filesystem::path& path) const;
};

struct QemuGuestSpec {
  GuestImage image;
  std::filesystem::path disk;  // raw, ext4; the guest's /dev/vda
  int memory_mib = 256;
  std::string qemu = "qemu-system-x86_64";  // looked up in PATH
};

struct FreezeOutcome {
  int filesystems = 0;  // >= 1
  std::chrono::milliseconds took{0};
};

struct CloseReport {
  bool was_possibly_frozen = false;  // a freeze had been sent and not undone
  bool thawed = false;               // ... and the thaw before quitting succeeded
  std::string status_after_thaw;     // guest-fsfreeze-status after that thaw
  bool quit_cleanly = false;         // exited after QMP quit within the grace period
  bool killed = false;               // SIGKILL was needed
  int exit_status = -1;              // waitpid status decoded: exit code or 128+signal
};

class QemuGuest {
 public:
  static constexpr const char* kDiskDevice = "disk0";

  // Starts QEMU and completes the QMP handshake (the guest boots on its own).
  static Result<std::unique_ptr<QemuGuest>> launch(const QemuGuestSpec& spec);
  ~QemuGuest();
  QemuGuest(const QemuGuest&) = delete;
  QemuGuest& operator=(const QemuGuest&) = delete;

  // Until the agent answers guest-sync-delimited; returns the time since launch.
  Result<std::chrono::milliseconds> wait_for_agent(std::chrono::milliseconds timeout);
  bool agent_connected() const;

  Result<FreezeOutcome> freeze(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Result<int> thaw(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Result<std::string> freeze_status(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Any agent command (e.g. to see what the agent refuses while frozen).
  Result<std::string> agent_call(const std::string& command, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // ... with arguments (a JSON object), e.g. guest-file-open {"path":...,"mode":"w"}.
  Result<std::string> agent_call(const std::string& command, const std::string& args_json,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // A point-in-time raw copy of the disk into target (absolute): the copy is as
  // of start_backup()'s return. create: QEMU creates/truncates target; else it
  // must exist (a preallocated or sparse file at least the disk's size).
  // Returns the job id for wait_backup().
  Result<std::string> start_backup(const std::filesystem::path& target, bool create);
  Status wait_backup(const std::string& job_id, std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // QMP query-status ("running", ...).
  Result<std::string> run_status();

  // Thaws if possibly frozen, quits QEMU (SIGKILL after grace), reaps it and
  // removes the run directory. Idempotent; the destructor calls it.
  CloseReport close(std::chrono::milliseconds grace = std::chrono::seconds(10));

  pid_t pid() const { return pid_; }
  bool running() const;
  // The end of the guest's serial console and of QEMU's own output (diagnostics).
  std::string console_tail(size_t bytes = 4000) const;

 private:
  QemuGuest();
  std::chrono::milliseconds since_launch() const;

  mutable std::mutex mu_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  std::filesystem::path run_dir_;
  std::chrono::steady_clock::time_point launched_at_;
  std::unique_ptr<AgentClient> agent_;
  std::unique_ptr<QmpClient> qmp_;
  bool agent_up_ = false;
  bool possibly_frozen_ = false;
  int next_job_ = 1;
  std::optional<CloseReport> closed_;
};

}  // namespace kvb::testcluster::guest
