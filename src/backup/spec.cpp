#include "backup/spec.h"

#include <regex>

namespace kvb::backup {

Status validate_backup_name(const std::string& name) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  if (name.size() > 63 || !std::regex_match(name, re)) {
    return Error(Errc::kInvalidArgument, "backup name \"" + name +
                                             "\" must be 1-63 lower-case letters, digits and '-', starting and ending alphanumeric");
  }
  return ok();
}

}  // namespace kvb::backup
