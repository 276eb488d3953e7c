// ExecSandbox: the file-system view a container command of the test cluster
// runs in (docs/testcluster.md "Exec"): bubblewrap (`bwrap`, Debian package
// bubblewrap) with every namespace unshared, the host's /usr read-only, and
// nothing else of the host: /etc is the container's own (hostname = the pod,
// passwd/group with root), /tmp, /proc and /dev are private, /root is the
// container's working directory (it persists between execs of one container),
// and /usr/bin is an image directory of links to the host's programs plus
// /usr/bin/virt-freezer, a small program (virt_freezer_main.cpp) that relays
// its argv over a unix socket bound at /run/kubevirt-testcluster/freezer.sock
// to the simulated virt-launcher of that pod (KubeVirt::virt_freezer: the
// simulated agent, or a `guest: qemu` VM's real one).
//
// Upstream, exec runs in the container's mount namespace (the CRI's
// ExecSync/Exec; runc exec joins the container's namespaces), so a command sees
// the container image, never the node's files.
//
// Invariants: the host's file system outside /usr (and the ld.so cache and
// /etc/alternatives, which /usr/bin's links need) is never visible; a
// FreezerEndpoint answers only for the pod it was made for; everything here
// runs on the cluster's loop thread.
#pragma once

#include "common/error.h"
#include "testcluster/net/event_loop.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvb::testcluster {

inline constexpr const char* kSandboxFreezerSocket = "/run/kubevirt-testcluster/freezer.sock";

struct SandboxContainer {
  std::filesystem::path dir;  // the container's state: root/ (its /root), etc/
  std::string ns, pod, container;
};

class ExecSandbox {
 public:
  // `state_dir`: where the image directory is made (once, on first use).
  explicit ExecSandbox(std::filesystem::path state_dir) : state_dir_(std::move(state_dir)) {}

  // Why sandboxed execs cannot run here (no bwrap, no virt-freezer program), or nullopt.
  std::optional<std::string> unavailable() const;
  // Whether `program` (argv[0]) names an executable in `c`'s view, as the
  // runtime would find it (PATH of the container when it has no '/'; a
  // relative path from /root, its working directory).
  bool resolves(const SandboxContainer& c, const std::string& program) const;
  // The bwrap argv that runs `command` in `c`'s view, with `freezer_socket`
  // (a host path) bound at kSandboxFreezerSocket.
  Result<std::vector<std::string>> argv(const SandboxContainer& c, const std::vector<std::string>& command,
                                        const std::filesystem::path& freezer_socket);
  static const char* container_path();  // PATH inside the container

 private:
  Status ensure_image();
  std::filesystem::path state_dir_;
  std::filesystem::path image_bin_;  // the container's /usr/bin (links + virt-freezer)
};

// A unix socket served on the loop: each connection sends virt-freezer's argv
// (NUL-terminated words, then end of file) and gets back the exit code, stdout
// and stderr (each a 4-byte big-endian length or code, then the bytes).
class FreezerEndpoint {
 public:
  using Reply = std::function<void(std::string out, std::string err, int code)>;
  using Handler = std::function<void(const std::vector<std::string>& args, Reply reply)>;
  static Result<std::shared_ptr<FreezerEndpoint>> listen(EventLoop& loop, const std::filesystem::path& path, Handler handler);
  virtual ~FreezerEndpoint() = default;
  // Stops accepting and removes the socket file; connections in flight finish.
  virtual void close() = 0;
};

}  // namespace kvb::testcluster
