#include "testcluster/guest/fs_oracle.h"

#include "common/subprocess.h"

#include <sstream>

namespace kvb::testcluster::guest {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// e2fsprogs live in /usr/sbin, which a user's PATH may lack.
std::string tool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::error_code ec;
    if (fs::exists(std::string(dir) + name, ec)) return std::string(dir) + name;
  }
  return name;
}

Result<ProcessResult> run(std::vector<std::string> argv) {
  argv[0] = tool(argv[0]);
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env_overrides = {{"LC_ALL", "C"}};
  spec.timeout = 120s;
  KVB_TRY(ProcessResult r, run_process(spec));
  if (r.timed_out) return Error(Errc::kTimeout, spec.argv[0] + " timed out on " + spec.argv.back());
  return r;
}

}  // namespace

Result<bool> has_ext4(const fs::path& image) {
  KVB_TRY(ProcessResult dump, run({"dumpe2fs", "-h", image.string()}));
  return dump.exit_code == 0;
}

Result<Ext4Check> inspect_ext4(const fs::path& image) {
  KVB_TRY(ProcessResult dump, run({"dumpe2fs", "-h", image.string()}));
  if (dump.exit_code != 0) {
    return Error(Errc::kDamaged, "dumpe2fs -h " + image.string() + " failed (" + std::to_string(dump.exit_code) +
                                     "): " + dump.err.substr(0, 400));
  }
  Ext4Check c;
  std::istringstream lines(dump.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Filesystem features:", 0) != 0) continue;
    std::istringstream words(line.substr(std::string("Filesystem features:").size()));
    for (std::string w; words >> w;) {
      if (w == "needs_recovery") c.needs_recovery = true;
      if (w == "has_journal") c.has_journal = true;
    }
  }
  KVB_TRY(ProcessResult fsck, run({"e2fsck", "-fn", image.string()}));
  c.fsck_exit = fsck.exit_code;
  c.fsck_output = fsck.out + fsck.err;
  return c;
}

Result<int> replay_into(const fs::path& image, const fs::path& scratch) {
  KVB_TRY(ProcessResult cp, run({"cp", "--sparse=always", "--", image.string(), scratch.string()}));
  if (cp.exit_code != 0) return Error(Errc::kIo, "copy " + image.string() + " -> " + scratch.string() + ": " + cp.err);
  KVB_TRY(ProcessResult fsck, run({"e2fsck", "-fy", scratch.string()}));
  return fsck.exit_code;
}

Result<std::string> read_ext4_file(const fs::path& image, const std::string& path) {
  if (path.empty() || path[0] != '/' ||
      path.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-") != std::string::npos) {
    return Error(Errc::kInvalidArgument, "ext4 path " + path + " must be absolute and hold only [A-Za-z0-9._/-]");
  }
  KVB_TRY(ProcessResult r, run({"debugfs", "-R", "cat " + path, image.string()}));
  if (r.exit_code != 0) return Error(Errc::kIo, "debugfs cat " + path + " in " + image.string() + ": " + r.err);
  // debugfs prints its banner and lookup errors on stderr and exits 0.
  if (r.err.find("File not found") != std::string::npos) {
    return Error(Errc::kNotFound, path + " is not in " + image.string());
  }
  return r.out;
}

}  // namespace kvb::testcluster::guest
