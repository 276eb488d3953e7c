// The Kubernetes exec/attach streaming protocol over WebSocket
// (v4.channel.k8s.io and v5.channel.k8s.io), as pure encode/decode functions.
//
// Every binary message starts with one channel byte: 0 stdin, 1 stdout,
// 2 stderr, 3 error (a JSON metav1.Status when the command ends), 4 resize;
// v5 adds 255 "close": a message {255, c} closes channel c (used for stdin EOF).
// The error channel's Status decides the exit code: status Success is exit 0;
// reason NonZeroExitCode with a cause {reason: ExitCode, message: "N"} is exit
// N; any other Failure is an error running the command (e.g. no such container).
#pragma once

#include "common/error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvb::kube {

inline constexpr std::string_view kExecProtocolV5 = "v5.channel.k8s.io";
inline constexpr std::string_view kExecProtocolV4 = "v4.channel.k8s.io";

enum class ExecChannel : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4, kClose = 255 };

std::string encode_exec_frame(ExecChannel channel, std::string_view payload);

// Port-forward framing (see the top of this file).
inline constexpr std::string_view kPortForwardProtocolV4 = "v4.channel.k8s.io";
std::string encode_channel_frame(uint8_t channel, std::string_view payload);
std::string encode_port_frame(uint8_t channel, uint16_t port);  // a channel's first message
// The port of a channel's first message (payload after the channel byte); nullopt unless exactly 2 bytes.
std::optional<uint16_t> decode_port_payload(std::string_view payload);

struct ExecFrame {
  ExecChannel channel;
  std::string_view payload;
};
// nullopt for an empty message (carries no channel).
std::optional<ExecFrame> decode_exec_frame(std::string_view message);

// Exit code from the error channel's Status JSON: >= 0, or an Error describing
// why the command could not run (message from the Status).
Result<int> exit_code_from_status(std::string_view status_json);

// The error channel's Status for an exit code (what a server sends).
std::string exec_status_json(int exit_code);

}  // namespace kvb::kube
