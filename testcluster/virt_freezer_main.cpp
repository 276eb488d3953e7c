// /usr/bin/virt-freezer inside the test cluster's exec sandbox
// (testcluster/exec_sandbox.h): sends its arguments over the unix socket the
// sandbox binds at /run/kubevirt-testcluster/freezer.sock to the simulated
// virt-launcher of its pod, and prints what that answers (stdout, stderr) and
// exits with its code. Like the real one (which talks to the launcher's
// socket), it fails with "Failed to connect launcher" when there is none.
// No dependencies beyond libc: it runs inside the sandbox.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

constexpr const char* kSocket = "/run/kubevirt-testcluster/freezer.sock";

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int fail(const char* why) {
  std::fprintf(stderr, "{\"component\":\"freezer\",\"level\":\"error\",\"msg\":\"Failed to connect launcher\",\"reason\":\"%s\"}\n", why);
  return 1;
}

bool take_u32(const std::string& s, size_t& at, uint32_t& v) {
  if (s.size() - at < 4) return false;
  v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  at += 4;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, kSocket, sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail(std::strerror(errno));
  std::string req;
  for (int i = 1; i < argc; ++i) {
    req += argv[i];
    req.push_back('\0');
  }
  if (!write_all(fd, req.data(), req.size())) return fail("the launcher went away");
  ::shutdown(fd, SHUT_WR);
  std::string in;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t at = 0;
  uint32_t code = 0, len = 0;
  if (!take_u32(in, at, code) || !take_u32(in, at, len) || in.size() - at < len) return fail("the launcher's answer was cut");
  std::string out = in.substr(at, len);
  at += len;
  if (!take_u32(in, at, len) || in.size() - at < len) return fail("the launcher's answer was cut");
  std::string err = in.substr(at, len);
  write_all(STDOUT_FILENO, out.data(), out.size());
  write_all(STDERR_FILENO, err.data(), err.size());
  return static_cast<int>(code);
}
