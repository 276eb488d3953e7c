#include "testcluster/guest/qemu_guest.h"

#include "common/subprocess.h"
#include "testcluster/guest/agent_client.h"
#include "testcluster/guest/qmp_client.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testcluster::guest {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

Clock::time_point deadline_in(std::chrono::milliseconds d) { return Clock::now() + d; }

std::string errno_text() { return std::strerror(errno); }

Result<int> listen_unix(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof(addr.sun_path)) return Error(Errc::kInvalidArgument, "socket path too long: " + p);
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Errc::kIo, "socket: " + errno_text());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0) {
    std::string e = errno_text();
    ::close(fd);
    return Error(Errc::kIo, "listen on " + p + ": " + e);
  }
  return fd;
}

Result<std::string> find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  dirs += ":/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return Error(Errc::kNotFound, name + " is not in PATH (package qemu-system-x86; run scripts/deps)");
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string tail_of(const fs::path& p, size_t bytes) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  size_t from = size > bytes ? size - bytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string s(size - from, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

}  // namespace

fs::path GuestImage::default_dir() {
  const char* env = std::getenv("KVB_GUEST_CACHE");
  return env && *env ? fs::path(env) : fs::path(KVB_GUEST_IMAGE_DIR);
}

Result<GuestImage> GuestImage::locate(const fs::path& dir) {
  GuestImage img{dir, dir / "vmlinuz", dir / "initrd.cpio", dir / "seed-disk.raw", dir / "seed"};
  for (const auto& p : {img.vmlinuz, img.initrd, img.seed_disk}) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) == 0) {
      return Error(Errc::kNotFound, "guest image file " + p.string() + " is missing: run scripts/guest-image " + dir.string());
    }
  }
  return img;
}

Status GuestImage::copy_seed_disk(const fs::path& path) const {
  ProcessSpec spec;
  spec.argv = {"cp", "--sparse=always", "--", seed_disk.string(), path.string()};
  KVB_TRY(auto r, run_process(spec));
  if (r.exit_code != 0) return Error(Errc::kIo, "copy of the seed disk to " + path.string() + " failed: " + r.err);
  return ok();
}

Status GuestImage::format_disk(const fs::path& path) const {
  ProcessSpec spec;
  spec.argv = {fs::exists("/usr/sbin/mke2fs") ? "/usr/sbin/mke2fs" : "/sbin/mke2fs",
               "-q", "-t", "ext4", "-L", "kvb-guest", "-d", seed_dir.string(), "-F", path.string()};
  spec.timeout = std::chrono::seconds(120);
  KVB_TRY(auto r, run_process(spec));
  if (r.exit_code != 0) return Error(Errc::kIo, "mke2fs on " + path.string() + " failed: " + r.out + r.err);
  return ok();
}

QemuGuest::QemuGuest() = default;

Result<std::unique_ptr<QemuGuest>> QemuGuest::launch(const QemuGuestSpec& spec) {
  KVB_TRY(std::string qemu, find_in_path(spec.qemu));
  if (!spec.disk.is_absolute() || !fs::is_regular_file(spec.disk)) {
    return Error(Errc::kInvalidArgument, "guest disk " + spec.disk.string() + " is not an existing file given by an absolute path");
  }
  std::unique_ptr<QemuGuest> g(new QemuGuest());
  // A short private directory: Unix socket paths must stay under ~107 bytes.
  char tmpl[] = "/tmp/kvbq-XXXXXX";
  if (!::mkdtemp(tmpl)) return Error(Errc::kIo, "mkdtemp /tmp/kvbq-XXXXXX: " + errno_text());
  g->run_dir_ = tmpl;
  Fd qga, qmp, devnull, log;
  KVB_TRY(qga.fd, listen_unix(g->run_dir_ / "qga.sock"));
  KVB_TRY(qmp.fd, listen_unix(g->run_dir_ / "qmp.sock"));
  devnull.fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  log.fd = ::open((g->run_dir_ / "qemu.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (devnull.fd < 0 || log.fd < 0) return Error(Errc::kIo, "open /dev/null or qemu.log: " + errno_text());

  // In the child the agent socket is fd 3 and the QMP socket fd 4.
  const std::string disk = spec.disk.string();
  if (disk.find(',') != std::string::npos) {
    return Error(Errc::kInvalidArgument, "guest disk path " + disk + " contains a comma (QEMU option syntax)");
  }
  std::vector<std::string> argv = {
      qemu, "-nodefaults", "-accel", "tcg", "-m", std::to_string(spec.memory_mib), "-smp", "1",
      "-kernel", spec.image.vmlinuz.string(), "-initrd", spec.image.initrd.string(),
      "-append", "console=ttyS0 quiet panic=-1 mitigations=off",
      "-drive", "file=" + disk + ",if=virtio,format=raw,id=" + kDiskDevice,
      "-chardev", "socket,id=qga0,fd=3,server=on,wait=off",
      "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
      "-chardev", "socket,id=qmp0,fd=4,server=on,wait=off", "-mon", "chardev=qmp0,mode=control",
      "-display", "none", "-serial", "file:" + (g->run_dir_ / "console.log").string(), "-monitor", "none",
      "-no-reboot"};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Error(Errc::kIo, "fork: " + errno_text());
  if (pid == 0) {
    // Child: async-signal-safe calls only. Move the descriptors out of the way
    // first (F_DUPFD picks a free number), then into 0..4; the rest closes.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int a = ::fcntl(devnull.fd, F_DUPFD, 1000), b = ::fcntl(log.fd, F_DUPFD, 1000);
    int c = ::fcntl(qga.fd, F_DUPFD, 1000), d = ::fcntl(qmp.fd, F_DUPFD, 1000);
    if (a < 0 || b < 0 || c < 0 || d < 0) ::_exit(126);
    if (::dup2(a, 0) < 0 || ::dup2(b, 1) < 0 || ::dup2(b, 2) < 0 || ::dup2(c, 3) < 0 || ::dup2(d, 4) < 0) ::_exit(126);
    ::syscall(SYS_close_range, 5u, ~0u, 0u);
    // The parent may block or ignore signals (kvbackup-testcluster blocks SIGTERM
    // and SIGINT in every thread; child_process ignores SIGPIPE): QEMU gets defaults.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  g->pid_ = pid;
  g->launched_at_ = Clock::now();
  g->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (g->pidfd_ < 0) return Error(Errc::kIo, "pidfd_open: " + errno_text());  // the destructor kills QEMU

  auto deadline = deadline_in(30s);
  KVB_TRY(LineSocket qmp_socket, LineSocket::connect(g->run_dir_ / "qmp.sock", g->pidfd_));
  auto qmp_client = QmpClient::handshake(std::move(qmp_socket), deadline);
  if (!qmp_client) return qmp_client.error().with_context("QEMU did not start: " + g->console_tail(1000));
  g->qmp_ = std::make_unique<QmpClient>(std::move(*qmp_client));
  KVB_TRY(LineSocket agent_socket, LineSocket::connect(g->run_dir_ / "qga.sock", g->pidfd_));
  g->agent_ = std::make_unique<AgentClient>(std::move(agent_socket));
  return g;
}

QemuGuest::~QemuGuest() { close(); }

std::chrono::milliseconds QemuGuest::since_launch() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - launched_at_);
}

bool QemuGuest::running() const {
  std::lock_guard lock(mu_);
  if (reaped_ || pidfd_ < 0) return false;
  pollfd p{pidfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

bool QemuGuest::agent_connected() const {
  std::lock_guard lock(mu_);
  return agent_up_;
}

Result<std::chrono::milliseconds> QemuGuest::wait_for_agent(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  auto st = agent_->sync(deadline_in(timeout));
  if (!st) return st.error().with_context("the guest agent did not answer (console: " + console_tail(1500) + ")");
  agent_up_ = true;
  return since_launch();
}

Result<FreezeOutcome> QemuGuest::freeze(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  const bool was_possibly_frozen = possibly_frozen_;
  possibly_frozen_ = true;  // from the moment the request may reach the agent
  auto start = Clock::now();
  auto r = agent_->freeze(deadline_in(timeout));
  if (!r) {
    const Errc c = r.error().code;
    if (c == Errc::kTimeout || c == Errc::kTransport || c == Errc::kIo) {
      // The outcome is unknown (the freeze may still take effect): thaw now.
      if (agent_->thaw(deadline_in(timeout))) possibly_frozen_ = false;
    } else {
      // The agent answered: refused (e.g. already frozen) or froze nothing.
      possibly_frozen_ = was_possibly_frozen;
    }
    return r.error();
  }
  return FreezeOutcome{*r, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)};
}

Result<int> QemuGuest::thaw(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  KVB_TRY(int n, agent_->thaw(deadline_in(timeout)));
  possibly_frozen_ = false;
  return n;
}

Result<std::string> QemuGuest::freeze_status(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  return agent_->freeze_status(deadline_in(timeout));
}

Result<std::string> QemuGuest::agent_call(const std::string& command, std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  return agent_->call(command, "", deadline_in(timeout));
}

Result<std::string> QemuGuest::agent_call(const std::string& command, const std::string& args_json,
                                          std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  return agent_->call(command, args_json, deadline_in(timeout));
}

Result<std::string> QemuGuest::start_backup(const fs::path& target, bool create) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  std::string job = "kvb-backup-" + std::to_string(next_job_++);
  KVB_CHECK(qmp_->start_backup(kDiskDevice, job, target, create, deadline_in(30s)));
  return job;
}

Status QemuGuest::wait_backup(const std::string& job_id, std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  return qmp_->wait_job(job_id, deadline_in(timeout));
}

Result<std::string> QemuGuest::run_status() {
  std::lock_guard lock(mu_);
  if (closed_) return Error(Errc::kTransport, "the guest is closed");
  return qmp_->query_status(deadline_in(10s));
}

std::string QemuGuest::console_tail(size_t bytes) const {
  return "[console] " + tail_of(run_dir_ / "console.log", bytes) + " [qemu] " + tail_of(run_dir_ / "qemu.log", bytes);
}

CloseReport QemuGuest::close(std::chrono::milliseconds grace) {
  std::lock_guard lock(mu_);
  if (closed_) return *closed_;
  CloseReport rep;
  if (pid_ > 0) {
    if (possibly_frozen_ && agent_) {
      rep.was_possibly_frozen = true;
      if (agent_->thaw(deadline_in(10s))) {
        rep.thawed = true;
        possibly_frozen_ = false;
        if (auto s = agent_->freeze_status(deadline_in(5s))) rep.status_after_thaw = *s;
      }
    }
    bool exited = false;
    if (qmp_ && qmp_->send_quit(deadline_in(2s))) {
      pollfd p{pidfd_, POLLIN, 0};
      exited = pidfd_ >= 0 && ::poll(&p, 1, static_cast<int>(grace.count())) == 1;
      rep.quit_cleanly = exited;
    }
    if (!exited) {
      ::kill(pid_, SIGKILL);
      rep.killed = true;
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    rep.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  agent_.reset();
  qmp_.reset();
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  if (!run_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(run_dir_, ec);
  }
  closed_ = rep;
  return rep;
}

}  // namespace kvb::testcluster::guest
