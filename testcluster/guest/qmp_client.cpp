#include "testcluster/guest/qmp_client.h"

#include <boost/json.hpp>

namespace kvb::testcluster::guest {
namespace json = boost::json;

namespace {

std::string str_member(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string().c_str()) : std::string();
}

}  // namespace

Result<QmpClient> QmpClient::handshake(LineSocket socket, Clock::time_point deadline) {
  QmpClient c(std::move(socket));
  KVB_TRY(std::string greeting, c.socket_.read_line(deadline));
  if (greeting.find("\"QMP\"") == std::string::npos) {
    return Error(Errc::kParse, "QMP: unexpected greeting: " + greeting.substr(0, 200));
  }
  KVB_CHECK(c.execute("qmp_capabilities", "", deadline));
  return c;
}

Result<std::string> QmpClient::execute(const std::string& command, const std::string& args_json,
                                       Clock::time_point deadline) {
  const std::int64_t id = next_id_++;
  json::object req{{"execute", command}, {"id", id}};
  if (!args_json.empty()) {
    boost::system::error_code ec;
    json::value args = json::parse(args_json, ec);
    if (ec || !args.is_object()) return Error(Errc::kInvalidArgument, command + ": arguments are not a JSON object");
    req["arguments"] = std::move(args);
  }
  KVB_CHECK(socket_.write_all(json::serialize(req) + "\n", deadline));
  for (;;) {
    KVB_TRY(std::string line, socket_.read_line(deadline));
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return Error(Errc::kParse, "QMP: non-JSON line: " + line.substr(0, 200));
    const auto& o = v.as_object();
    if (o.contains("event")) {
      events_.push_back(std::move(line));
      continue;
    }
    const auto* rid = o.if_contains("id");
    if (!rid || !rid->is_int64() || rid->as_int64() != id) continue;  // an answer to an abandoned command
    if (const auto* err = o.if_contains("error"); err && err->is_object()) {
      return Error(Errc::kInternal, "QMP " + command + ": " + str_member(err->as_object(), "class") + ": " +
                                        str_member(err->as_object(), "desc"));
    }
    const auto* ret = o.if_contains("return");
    return ret ? json::serialize(*ret) : std::string("{}");
  }
}

Result<std::string> QmpClient::query_status(Clock::time_point deadline) {
  KVB_TRY(std::string ret, execute("query-status", "", deadline));
  boost::system::error_code ec;
  json::value v = json::parse(ret, ec);
  if (ec || !v.is_object()) return Error(Errc::kParse, "QMP query-status returned " + ret);
  return str_member(v.as_object(), "status");
}

Status QmpClient::start_backup(const std::string& device, const std::string& job_id,
                               const std::filesystem::path& target, bool create, Clock::time_point deadline) {
  if (!target.is_absolute()) return Error(Errc::kInvalidArgument, "backup target " + target.string() + " is not absolute");
  json::object args{{"device", device},
                    {"job-id", job_id},
                    {"sync", "full"},
                    {"target", target.string()},
                    {"format", "raw"},
                    {"mode", create ? "absolute-paths" : "existing"}};
  auto r = execute("drive-backup", json::serialize(args), deadline);
  if (!r) return r.error();
  return ok();
}

Status QmpClient::wait_job(const std::string& job_id, Clock::time_point deadline) {
  for (;;) {
    std::string line;
    if (!events_.empty()) {
      line = std::move(events_.front());
      events_.pop_front();
    } else {
      KVB_TRY(std::string l, socket_.read_line(deadline));
      line = std::move(l);
    }
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    const std::string event = str_member(o, "event");
    const auto* data = o.if_contains("data");
    if (!data || !data->is_object() || str_member(data->as_object(), "device") != job_id) continue;
    if (event == "BLOCK_JOB_COMPLETED") {
      std::string err = str_member(data->as_object(), "error");
      if (!err.empty()) return Error(Errc::kIo, "backup job " + job_id + " failed: " + err);
      return ok();
    }
    if (event == "BLOCK_JOB_CANCELLED") return Error(Errc::kCancelled, "backup job " + job_id + " was cancelled");
  }
}

Status QmpClient::send_quit(Clock::time_point deadline) {
  return socket_.write_all("{\"execute\": \"quit\"}\n", deadline);
}

}  // namespace kvb::testcluster::guest
