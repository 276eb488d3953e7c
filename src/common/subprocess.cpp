#include "common/subprocess.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace kvb {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  int release(int i) {
    int f = fd[i];
    fd[i] = -1;
    return f;
  }
};

std::string program_name(const std::vector<std::string>& argv) {
  return argv.empty() ? std::string("<empty>") : argv[0];
}

}  // namespace

EnvVars environment_with(const EnvVars& overrides) {
  EnvVars env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  for (const auto& [k, v] : overrides) {
    bool replaced = false;
    for (auto& [ek, ev] : env) {
      if (ek == k) {
        ev = v;
        replaced = true;
      }
    }
    if (!replaced) env.emplace_back(k, v);
  }
  return env;
}

Result<SpawnedProcess> spawn_process(const std::vector<std::string>& argv, const EnvVars& env,
                                     const std::filesystem::path& working_dir) {
  if (argv.empty()) return Error(Errc::kInvalidArgument, "cannot run an empty command");
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 ||
      ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return Error(Errc::kIo, std::string("cannot create pipes: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  if (!working_dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, working_dir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  envs.reserve(env.size());
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    Error e(Errc::kNotFound, "cannot run \"" + program_name(argv) + "\": " + std::strerror(rc));
    if (rc != ENOENT) e.code = Errc::kIo;
    return e;
  }
  SpawnedProcess p;
  p.pid = pid;
  p.stdin_fd = in.release(1);
  p.stdout_fd = out.release(0);
  p.stderr_fd = err.release(0);
  return p;
}

Result<ProcessResult> run_process(const ProcessSpec& spec) {
  auto env = spec.inherit_environment ? environment_with(spec.env_overrides) : spec.env_overrides;
  auto spawned = spawn_process(spec.argv, env, spec.working_dir);
  if (!spawned) return spawned.error();
  SpawnedProcess p = *spawned;
  ProcessResult result;

  ::fcntl(p.stdin_fd, F_SETFL, O_NONBLOCK);
  size_t stdin_off = 0;
  if (spec.stdin_data.empty()) {
    ::close(p.stdin_fd);
    p.stdin_fd = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  char buf[16384];
  while (p.stdout_fd >= 0 || p.stderr_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                      std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    int idx_out = -1, idx_err = -1, idx_in = -1;
    if (p.stdout_fd >= 0) { idx_out = static_cast<int>(n); fds[n++] = {p.stdout_fd, POLLIN, 0}; }
    if (p.stderr_fd >= 0) { idx_err = static_cast<int>(n); fds[n++] = {p.stderr_fd, POLLIN, 0}; }
    if (p.stdin_fd >= 0) { idx_in = static_cast<int>(n); fds[n++] = {p.stdin_fd, POLLOUT, 0}; }
    int rc = ::poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1'000'000)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto drain = [&](int idx, int& fd, std::string& sink) {
      if (idx < 0 || fds[idx].revents == 0) return;
      ssize_t got = ::read(fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EINTR) return;
        ::close(fd);
        fd = -1;
        return;
      }
      size_t room = spec.output_cap > sink.size() ? spec.output_cap - sink.size() : 0;
      sink.append(buf, std::min(room, static_cast<size_t>(got)));
    };
    drain(idx_out, p.stdout_fd, result.out);
    drain(idx_err, p.stderr_fd, result.err);
    if (idx_in >= 0 && fds[idx_in].revents != 0) {
      ssize_t put = ::write(p.stdin_fd, spec.stdin_data.data() + stdin_off,
                            spec.stdin_data.size() - stdin_off);
      if (put > 0) stdin_off += static_cast<size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) stdin_off = spec.stdin_data.size();
      if (stdin_off >= spec.stdin_data.size()) {
        ::close(p.stdin_fd);
        p.stdin_fd = -1;
      }
    }
  }
  for (int fd : {p.stdin_fd, p.stdout_fd, p.stderr_fd})
    if (fd >= 0) ::close(fd);
  if (result.timed_out) ::kill(-p.pid, SIGKILL);
  int status = 0;
  while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

}  // namespace kvb
