#include "restore/spec.h"

namespace kvb::restore {

Result<std::map<std::string, std::string>> parse_mapping(const std::string& flag, const std::vector<std::string>& pairs) {
  std::map<std::string, std::string> out;
  for (const auto& p : pairs) {
    auto colon = p.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == p.size()) {
      return Error(Errc::kInvalidArgument, flag + " \"" + p + "\": expected OLD:NEW");
    }
    auto [it, inserted] = out.emplace(p.substr(0, colon), p.substr(colon + 1));
    if (!inserted) return Error(Errc::kInvalidArgument, flag + " \"" + p + "\": " + it->first + " is mapped twice");
  }
  return out;
}

}  // namespace kvb::restore
