#include "tests/fuzz/targets.h"

#include "record/backup_record.h"
#include "common/atomic_file.h"
#include "kube/api_status.h"
#include "kube/config.h"
#include "kube/exec_protocol.h"
#include "kube/selector.h"
#include "rules/parse.h"

#include <boost/json.hpp>

#include <unistd.h>

namespace kvb::fuzz {
namespace {

std::string text(const uint8_t* d, size_t n) { return std::string(reinterpret_cast<const char*>(d), n); }

int rules_target(const uint8_t* d, size_t n) {
  for (auto phase : {rules::Phase::kPre, rules::Phase::kPost}) (void)rules::parse_rule_documents(text(d, n), "fuzz.yaml", phase);
  return 0;
}

int kubeconfig_target(const uint8_t* d, size_t n) {
  static const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("kvb-fuzz-kubeconfig-" + std::to_string(::getpid()) + ".yaml");
  if (!write_file_atomic(file, text(d, n), 0600, /*durable=*/false)) return 0;
  (void)kube::load_kubeconfig_files({file}, "", false);
  return 0;
}

int status_target(const uint8_t* d, size_t n) {
  for (int code : {400, 403, 404, 409, 410, 422, 429, 500, 503}) (void)kube::error_from_response(code, text(d, n), "3", "GET /x");
  (void)kube::exit_code_from_status(text(d, n));
  return 0;
}

int exec_frame_target(const uint8_t* d, size_t n) {
  std::string message = text(d, n);  // the frame's payload views it
  if (auto f = kube::decode_exec_frame(message)) (void)kube::encode_exec_frame(f->channel, f->payload);
  return 0;
}

int selector_target(const uint8_t* d, size_t n) {
  if (auto s = kube::LabelSelector::parse(text(d, n))) (void)s->matches(kube::Labels{{"app", "db"}, {"tier", "x"}});
  (void)kube::FieldSelector::parse(text(d, n));
  return 0;
}

int backup_record_target(const uint8_t* d, size_t n) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text(d, n), ec);
  if (!ec) (void)record::BackupRecord::from_json(v, "fuzz.json");
  return 0;
}

}  // namespace

const std::vector<NamedTarget>& targets() {
  static const std::vector<NamedTarget> all = {
      {"rules", rules_target},           {"kubeconfig", kubeconfig_target}, {"status", status_target},
      {"exec_frame", exec_frame_target}, {"selector", selector_target},     {"backup_record", backup_record_target},
  };
  return all;
}

}  // namespace kvb::fuzz

#ifdef KVB_FUZZ_TARGET
// libFuzzer entry point of one target (scripts/fuzz builds one binary per target).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kvb::fuzz::Target t = [] {
    for (const auto& nt : kvb::fuzz::targets()) {
      if (std::string(nt.name) == KVB_FUZZ_TARGET) return nt.run;
    }
    std::abort();
  }();
  return t(data, size);
}
#endif
