#include "record/naming.h"

#include "common/hex.h"
#include <openssl/sha.h>

#include <cctype>
#include <regex>

namespace kvb::record {

namespace {

std::string short_hash(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return hex_encode(std::span<const unsigned char>(d, 8));
}

// Lower-case letters, digits, '-' and '.'; at most `max` characters (a hash keeps long names unique).
std::string object_name(std::string name, size_t max) {
  for (char& c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) c = '-';
  }
  if (name.size() > max) name = name.substr(0, max - 17) + "-" + short_hash(name);
  while (!name.empty() && !std::isalnum(static_cast<unsigned char>(name.back()))) name.pop_back();
  return name;
}

}  // namespace

Status validate_backup_name(const std::string& name) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  if (name.size() > 63 || !std::regex_match(name, re)) {
    return Error(Errc::kInvalidArgument, "backup name \"" + name +
                                             "\" must be 1-63 lower-case letters, digits and '-', starting and ending alphanumeric");
  }
  return ok();
}

std::string backup_dir(const std::string& backup) { return "backups/" + backup; }
std::string backup_record_path(const std::string& backup) { return backup_dir(backup) + "/backup.json"; }

std::string resource_path(const std::string& backup, const std::string& ns, const std::string& resource, const std::string& name) {
  return backup_dir(backup) + "/resources/" + (ns.empty() ? std::string("_cluster") : ns) + "/" + resource + "/" + name + ".json";
}

std::string journal_entry_path(const std::string& backup) { return "journal/" + backup + ".json"; }
std::string journal_lock_name(const std::string& backup) { return backup + ".lock"; }

std::string snapshot_name(const std::string& backup, const std::string& vm, const std::string& volume, const std::string& suffix) {
  std::string base = backup + "-" + vm + "-" + volume;
  if (suffix.empty()) return object_name(base, 253);
  return object_name(base, 253 - suffix.size() - 1) + "-" + suffix;
}

std::string freeze_lease_name(const std::string& vm) { return object_name("kvbackup-freeze-" + vm, 253); }

std::string label_value(const std::string& text) {
  std::string v = text.size() <= 63 ? text : text.substr(0, 63);
  while (!v.empty() && !std::isalnum(static_cast<unsigned char>(v.back()))) v.pop_back();
  while (!v.empty() && !std::isalnum(static_cast<unsigned char>(v.front()))) v.erase(0, 1);
  return v;
}

}  // namespace kvb::record
