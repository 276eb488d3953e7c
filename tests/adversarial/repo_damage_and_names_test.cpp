// Issue 13 item 16, the repository's parts: names that could rewrite a
// terminal, damage reported as damage, and the password and key files.
//
// - A snapshot name or tag with a newline, ESC or another control character
//   is refused at put (exit 2), and one already stored (an older kvbackup, a
//   hostile repository) is printed escaped by list, check and errors.
// - A corrupt blob makes get exit 1 (data damage) naming the snapshot and the
//   byte ranges of the image it costs.
// - A --password-file others can read gets a warning naming the file (never
//   its content); a malformed key file is reported as damaged, naming it.
#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/printable.h"
#include "common/subprocess.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

const std::string kPassword = "names-and-damage-pw";

ProcessResult kvb(const std::vector<std::string>& args, const EnvVars& env = {{"KVBACKUP_REPO_PASSWORD", kPassword}}) {
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "repo"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = env;
  spec.timeout = std::chrono::seconds(60);
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

// The repository's master key, unwrapped from its key file as Repository::open does.
repo::MasterKey master_key(const fs::path& repo_dir) {
  fs::path keyfile = fs::directory_iterator(repo_dir / "keys")->path();
  auto v = boost::json::parse(*read_file(keyfile)).as_object();
  repo::KdfParams kdf;
  kdf.n = v.at("n").to_number<uint64_t>();
  kdf.r = v.at("r").to_number<uint32_t>();
  kdf.p = v.at("p").to_number<uint32_t>();
  auto salt = *base64_decode(v.at("salt").as_string());
  std::memcpy(kdf.salt.data(), salt.data(), kdf.salt.size());
  auto data = *base64_decode(v.at("data").as_string());
  return *repo::unwrap_master_key(repo::as_bytes(data), Secret(kPassword), kdf);
}

// The packs of a local repository, with their paths on disk.
std::vector<repo::PackFile> packs_on_disk(const std::filesystem::path& repo_dir) {
  auto loc = location::open_local(repo_dir, location::OpenMode::kExisting);
  if (!loc) return {};
  auto packs = repo::list_pack_files(**loc);
  if (!packs) return {};
  for (auto& p : *packs) p.path = (repo_dir / p.path).string();
  return *packs;
}

std::string image(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 11);
  return s;
}

TEST(RepoNames, ControlCharactersAreRefusedAtPutAndPrintedEscaped) {
  TempDir dir;
  std::string r = (dir / "r").string();
  ASSERT_EQ(kvb({"init", "--repo", r}).exit_code, 0);
  dir.write("img", image(1 << 20));
  auto bad = kvb({"put", "--repo", r, "vm\n\x1b[2Jowned", (dir / "img").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("vm\\n\\x1b[2Jowned"));
  EXPECT_THAT(bad.err + bad.out, Not(HasSubstr("\x1b"))) << "no raw escape reaches the terminal";
  auto bad_tag = kvb({"put", "--repo", r, "--tag", "a\rb", "vm", (dir / "img").string()});
  EXPECT_EQ(bad_tag.exit_code, 2);
  EXPECT_THAT(bad_tag.err, HasSubstr("a\\rb"));
  auto bidi = kvb({"put", "--repo", r, "vm\u202egpj.exe", (dir / "img").string()});
  EXPECT_EQ(bidi.exit_code, 2);
  EXPECT_THAT(bidi.err, HasSubstr("\\u202e"));
  auto fine = kvb({"put", "--repo", r, "--tag", "nightly", "vm-db_0.ünicode", (dir / "img").string()});
  EXPECT_EQ(fine.exit_code, 0) << fine.err;

  // A snapshot stored with such a name anyway (by an older kvbackup, or a
  // hostile repository) is listed escaped, and check's problems are escaped.
  auto key = master_key(r);
  repo::Snapshot evil;
  evil.name = "evil\n\x1b[31mred";
  evil.time = "2026-01-01T00:00:00.000000000Z";
  evil.size = 4096;
  evil.tags = {"t\x1b]0;title\x07"};
  repo::BlobId missing{};
  missing[0] = 1;
  evil.extents.push_back(repo::Extent{0, 4096, missing});
  ASSERT_TRUE(repo::save_snapshot(**location::open_local(r, location::OpenMode::kExisting), key.encryption, evil));
  auto list = kvb({"list", "--repo", r});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("evil\\n\\x1b[31mred"));
  EXPECT_THAT(list.out, HasSubstr("t\\x1b]0;title\\x07"));
  EXPECT_THAT(list.out, Not(HasSubstr("\x1b")));
  auto check = kvb({"check", "--repo", r});
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_THAT(check.err, HasSubstr("evil\\n\\x1b[31mred"));
  EXPECT_THAT(check.err + check.out, Not(HasSubstr("\x1b")));
  auto get = kvb({"get", "--repo", r, "evil\n\x1b[31mred", "-"});
  EXPECT_NE(get.exit_code, 0);
  EXPECT_THAT(get.err, Not(HasSubstr("\x1b")));
}

TEST(RepoDamage, ACorruptBlobIsDataDamageNamingSnapshotAndByteRange) {
  TempDir dir;
  std::string r = (dir / "r").string();
  ASSERT_EQ(kvb({"init", "--repo", r}).exit_code, 0);
  dir.write("img", image(4 << 20));
  auto put = kvb({"put", "--repo", r, "vm", (dir / "img").string()});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  std::string id = put.out.substr(put.out.find("snapshot ") + 9, 32);
  auto packs = packs_on_disk(r);
  ASSERT_FALSE(packs.empty());
  {
    int fd = ::open(packs.front().path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "\xff\xff\xff\xff", 4, 64), 4);  // inside the first blob
    ::close(fd);
  }
  for (const std::string& target : {std::string("-"), (dir / "out").string()}) {
    auto get = kvb({"get", "--repo", r, "vm", target});
    EXPECT_EQ(get.exit_code, 1) << "damage is not bad input: " << get.err;
    EXPECT_THAT(get.err, HasSubstr("snapshot " + id + " (vm)"));
    EXPECT_THAT(get.err, ::testing::ContainsRegex("bytes [0-9]+\\.\\.[0-9]+.* of the image"));
    EXPECT_THAT(get.err, HasSubstr(packs.front().name));
  }
  EXPECT_FALSE(fs::exists(dir / "out")) << "nothing is left where the restore was going";
}

TEST(RepoSecrets, AReadablePasswordFileIsWarnedAboutAndADamagedKeyFileNamed) {
  TempDir dir;
  std::string r = (dir / "r").string();
  ASSERT_EQ(kvb({"init", "--repo", r}).exit_code, 0);
  dir.write("pw", kPassword + "\n", 0644);
  ::chmod((dir / "pw").c_str(), 0644);
  auto loose = kvb({"list", "--repo", r, "--password-file", (dir / "pw").string()}, {});
  EXPECT_EQ(loose.exit_code, 0) << loose.err;
  EXPECT_THAT(loose.err, HasSubstr("warning: password file " + (dir / "pw").string() + " can be read by every user (mode 0644)"));
  EXPECT_THAT(loose.out + loose.err, Not(HasSubstr(kPassword)));
  ::chmod((dir / "pw").c_str(), 0640);
  EXPECT_THAT(kvb({"list", "--repo", r, "--password-file", (dir / "pw").string()}, {}).err, HasSubstr("can be read by its group"));
  ::chmod((dir / "pw").c_str(), 0600);
  auto tight = kvb({"list", "--repo", r, "--password-file", (dir / "pw").string()}, {});
  EXPECT_EQ(tight.exit_code, 0);
  EXPECT_THAT(tight.err, Not(HasSubstr("warning")));

  // A malformed key file: damage, named, exit 1; never "wrong password".
  fs::path keyfile = fs::directory_iterator(fs::path(r) / "keys")->path();
  dir.write("saved-key", *read_file(keyfile));
  ASSERT_TRUE(write_file_atomic(keyfile, "{\"kdf\": \"scrypt\", \"n\": "));
  auto damaged = kvb({"list", "--repo", r});
  EXPECT_EQ(damaged.exit_code, 1) << damaged.err;
  EXPECT_THAT(damaged.err, HasSubstr("key file " + keyfile.string() + " is damaged"));
  EXPECT_THAT(damaged.err, Not(HasSubstr("wrong password")));
  ASSERT_TRUE(write_file_atomic(keyfile, R"({"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "!!", "data": "x"})"));
  EXPECT_THAT(kvb({"list", "--repo", r}).err, HasSubstr("is damaged: malformed"));
  // With the key file intact again, a wrong password is still called that.
  ASSERT_TRUE(write_file_atomic(keyfile, *read_file(dir / "saved-key")));
  auto wrong = kvb({"list", "--repo", r}, {{"KVBACKUP_REPO_PASSWORD", "guess"}});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("wrong password"));
}

TEST(Printable, EscapesWhatCouldRewriteATerminal) {
  EXPECT_EQ(printable("plain-name_0.img"), "plain-name_0.img");
  EXPECT_EQ(printable("a\nb\x1b[2J\t\\"), "a\\nb\\x1b[2J\\t\\\\");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9") << "UTF-8 is kept";
  EXPECT_EQ(printable("\xc2\x85\xe2\x80\xae\xff"), "\\u0085\\u202e\\xff");
  EXPECT_TRUE(check_name("vm-db", "name"));
  EXPECT_FALSE(check_name("", "name"));
  EXPECT_FALSE(check_name(std::string("a\0b", 3), "name"));
  EXPECT_FALSE(check_name("\xc0\xaf", "name")) << "an overlong encoding is not UTF-8";
  EXPECT_FALSE(check_name(std::string(300, 'x'), "name"));
}

}  // namespace
}  // namespace kvb::testing
