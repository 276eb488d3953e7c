#include "kube/exec_protocol.h"

#include "kube/api_status.h"

#include <boost/json.hpp>

#include <charconv>

namespace kvb::kube {
namespace json = boost::json;

std::string encode_channel_frame(uint8_t channel, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 1);
  out += static_cast<char>(channel);
  out.append(payload);
  return out;
}

std::string encode_exec_frame(ExecChannel channel, std::string_view payload) {
  return encode_channel_frame(static_cast<uint8_t>(channel), payload);
}

std::string encode_port_frame(uint8_t channel, uint16_t port) {
  const char p[2] = {static_cast<char>(port & 0xff), static_cast<char>(port >> 8)};
  return encode_channel_frame(channel, std::string_view(p, 2));
}

std::optional<uint16_t> decode_port_payload(std::string_view payload) {
  if (payload.size() != 2) return std::nullopt;
  return static_cast<uint16_t>(static_cast<uint8_t>(payload[0]) | (static_cast<uint8_t>(payload[1]) << 8));
}

std::optional<ExecFrame> decode_exec_frame(std::string_view message) {
  if (message.empty()) return std::nullopt;
  return ExecFrame{static_cast<ExecChannel>(static_cast<uint8_t>(message[0])), message.substr(1)};
}

Result<int> exit_code_from_status(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Error(Errc::kParse, "exec error channel: not a Status object: " + std::string(text.substr(0, 200)));
  }
  const json::object& o = v.get_object();
  auto str = [](const json::object& obj, std::string_view key) -> std::string_view {
    auto* p = obj.if_contains(key);
    if (!p || !p->is_string()) return {};
    return {p->get_string().data(), p->get_string().size()};
  };
  std::string_view status = str(o, "status");
  if (status == "Success") return 0;
  std::string_view reason = str(o, "reason");
  std::string message(str(o, "message"));
  if (reason == "NonZeroExitCode") {
    if (auto* details = o.if_contains("details"); details && details->is_object()) {
      if (auto* causes = details->get_object().if_contains("causes"); causes && causes->is_array()) {
        for (const auto& c : causes->get_array()) {
          if (!c.is_object() || str(c.get_object(), "reason") != "ExitCode") continue;
          std::string_view m = str(c.get_object(), "message");
          int code = -1;
          auto [p, err] = std::from_chars(m.data(), m.data() + m.size(), code);
          if (err == std::errc() && p == m.data() + m.size() && code >= 0) return code;
        }
      }
    }
    return Error(Errc::kParse, "exec error channel: NonZeroExitCode without a valid ExitCode cause: " + message);
  }
  int code = 0;
  if (auto* c = o.if_contains("code"); c && c->is_int64()) code = static_cast<int>(c->get_int64());
  Error e(code ? errc_for(code, reason) : Errc::kInternal,
          message.empty() ? "exec failed (" + std::string(reason) + ")" : message);
  e.http_status = code;
  e.reason = std::string(reason);
  return e;
}

std::string exec_status_json(int exit_code) {
  if (exit_code == 0) return R"({"metadata":{},"status":"Success"})";
  StatusDetails d;
  d.causes.emplace_back("ExitCode", std::to_string(exit_code));
  std::string msg = "command terminated with non-zero exit code: exit status " + std::to_string(exit_code);
  // The real API server omits "code" here; status_json always writes it, which clients ignore.
  return status_json(500, "NonZeroExitCode", msg, d);
}

}  // namespace kvb::kube
