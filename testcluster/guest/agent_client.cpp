#include "testcluster/guest/agent_client.h"

#include <boost/json.hpp>
#include <openssl/rand.h>

namespace kvb::testcluster::guest {
namespace json = boost::json;

namespace {

// A random id in [1, 2^52): exact in JSON numbers, unlikely to meet an old one.
std::int64_t random_id() {
  std::uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof(v)) != 1) v = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  return static_cast<std::int64_t>((v & ((std::uint64_t{1} << 52) - 1)) | 1);
}

}  // namespace

Status AgentClient::sync(Clock::time_point deadline) {
  const std::int64_t id = random_id();
  json::object req{{"execute", "guest-sync-delimited"}, {"arguments", json::object{{"id", id}}}};
  std::string wire = "\xff" + json::serialize(req) + "\n";
  KVB_CHECK(socket_.write_all(wire, deadline));
  for (;;) {
    KVB_TRY(std::string line, socket_.read_line(deadline));
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;  // stale or partial output from before the delimiter
    const auto* ret = v.as_object().if_contains("return");
    if (ret && ret->is_int64() && ret->as_int64() == id) return ok();
    if (ret && ret->is_uint64() && static_cast<std::int64_t>(ret->as_uint64()) == id) return ok();
  }
}

Result<std::string> AgentClient::call(const std::string& command, const std::string& args_json,
                                      Clock::time_point deadline) {
  KVB_CHECK(sync(deadline));
  json::object req{{"execute", command}};
  if (!args_json.empty()) {
    boost::system::error_code ec;
    json::value args = json::parse(args_json, ec);
    if (ec || !args.is_object()) return Error(Errc::kInvalidArgument, command + ": arguments are not a JSON object");
    req["arguments"] = std::move(args);
  }
  KVB_CHECK(socket_.write_all(json::serialize(req) + "\n", deadline));
  KVB_TRY(std::string line, socket_.read_line(deadline));
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return Error(Errc::kParse, command + ": the agent answered with non-JSON: " + line.substr(0, 200));
  const auto& o = v.as_object();
  if (const auto* err = o.if_contains("error")) {
    std::string cls, desc;
    if (err->is_object()) {
      if (const auto* c = err->as_object().if_contains("class"); c && c->is_string()) cls = c->as_string().c_str();
      if (const auto* d = err->as_object().if_contains("desc"); d && d->is_string()) desc = d->as_string().c_str();
    }
    return Error(Errc::kInternal, "guest agent refused " + command + ": " + cls + ": " + desc);
  }
  const auto* ret = o.if_contains("return");
  if (!ret) return Error(Errc::kParse, command + ": the agent's answer has no return: " + line.substr(0, 200));
  return json::serialize(*ret);
}

Result<int> AgentClient::freeze(Clock::time_point deadline) {
  KVB_TRY(std::string ret, call("guest-fsfreeze-freeze", "", deadline));
  boost::system::error_code ec;
  json::value v = json::parse(ret, ec);
  if (ec || !v.is_int64()) return Error(Errc::kParse, "guest-fsfreeze-freeze returned " + ret + ", not a count");
  if (v.as_int64() < 1) {
    return Error(Errc::kInternal, "guest-fsfreeze-freeze froze " + ret +
                                      " file systems: nothing the agent can freeze is mounted, so this is not a freeze");
  }
  return static_cast<int>(v.as_int64());
}

Result<int> AgentClient::thaw(Clock::time_point deadline) {
  KVB_TRY(std::string ret, call("guest-fsfreeze-thaw", "", deadline));
  boost::system::error_code ec;
  json::value v = json::parse(ret, ec);
  if (ec || !v.is_int64()) return Error(Errc::kParse, "guest-fsfreeze-thaw returned " + ret + ", not a count");
  return static_cast<int>(v.as_int64());
}

Result<std::string> AgentClient::freeze_status(Clock::time_point deadline) {
  KVB_TRY(std::string ret, call("guest-fsfreeze-status", "", deadline));
  boost::system::error_code ec;
  json::value v = json::parse(ret, ec);
  if (ec || !v.is_string()) return Error(Errc::kParse, "guest-fsfreeze-status returned " + ret);
  return std::string(v.as_string().c_str());
}

}  // namespace kvb::testcluster::guest
