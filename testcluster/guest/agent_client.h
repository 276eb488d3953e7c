// AgentClient: the QEMU guest agent's protocol (QGA JSON over the virtio-serial
// chardev's Unix socket), as KubeVirt's virt-launcher speaks it.
//
// Every call first resynchronises: 0xFF + guest-sync-delimited with a fresh
// random id, then reads and drops everything until that id comes back (bytes
// sent before the agent was up, or answers to a call that timed out, are
// answered later and must not be taken for this call's answer).
//
// Invariants: freeze() succeeds only when the agent reports at least one file
// system frozen: a count of 0 (nothing mounted that can be frozen) is returned
// as an error, never as a freeze. While frozen the agent refuses most commands;
// sync, status and thaw still work. Not thread-safe: QemuGuest serialises calls.
#pragma once

#include "common/error.h"
#include "testcluster/guest/line_socket.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace kvb::testcluster::guest {

class AgentClient {
 public:
  AgentClient() = default;
  explicit AgentClient(LineSocket socket) : socket_(std::move(socket)) {}

  // Until the agent answers a guest-sync-delimited (it may not be up yet: the
  // request is answered once it is).
  Status sync(Clock::time_point deadline);

  // guest-fsfreeze-freeze: the number of file systems frozen (>= 1).
  Result<int> freeze(Clock::time_point deadline);
  // guest-fsfreeze-thaw: the number of file systems thawed (0 when none was frozen).
  Result<int> thaw(Clock::time_point deadline);
  // guest-fsfreeze-status: "frozen" or "thawed".
  Result<std::string> freeze_status(Clock::time_point deadline);
  // Any command; args_json is a JSON object or empty. Returns the "return"
  // member serialised as JSON; an {"error": ...} answer is an Error naming the
  // command and the agent's class and description.
  Result<std::string> call(const std::string& command, const std::string& args_json, Clock::time_point deadline);

  bool connected() const { return socket_.is_open(); }

 private:
  LineSocket socket_;
};

}  // namespace kvb::testcluster::guest
