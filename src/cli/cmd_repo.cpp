// kvbackup repo init | put | get | list | check  (docs/repository.md)
//
// The password comes from $KVBACKUP_REPO_PASSWORD or --password-file, never
// from argv.
#include "cli/options.h"
#include "common/atomic_file.h"
#include "repo/repository.h"

#include <cstdio>
#include <cstdlib>

namespace kvb::cli {

namespace {

struct RepoOptions {
  std::string repo, password_file, name, path, snapshot;
  bool read_data = false;
};

Result<Secret> password(const RepoOptions& o) {
  if (!o.password_file.empty()) {
    KVB_TRY(auto text, read_file(o.password_file));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) return Error(Errc::kInvalidArgument, "--password-file " + o.password_file + ": the file is empty");
    return Secret(text);
  }
  if (const char* env = std::getenv("KVBACKUP_REPO_PASSWORD"); env && *env) return Secret(env);
  return Error(Errc::kInvalidArgument, "no repository password: set KVBACKUP_REPO_PASSWORD or pass --password-file FILE");
}

Result<std::unique_ptr<repo::Repository>> open_repo(const RepoOptions& o) {
  KVB_TRY(auto pw, password(o));
  return repo::Repository::open(o.repo, pw);
}

int init(const RepoOptions& o) {
  auto pw = password(o);
  if (!pw) return report_error(pw.error());
  if (auto st = repo::Repository::init(o.repo, *pw); !st) return report_error(st.error());
  std::printf("created repository %s\n", o.repo.c_str());
  return kExitOk;
}

int put(const RepoOptions& o) {
  auto r = open_repo(o);
  if (!r) return report_error(r.error());
  auto s = (*r)->put(o.name, o.path);
  if (!s) return report_error(s.error());
  std::printf("%s: %llu bytes, %zu chunks (%zu new, %llu bytes new, %llu stored), %llu zero bytes not stored, %zu packs\n",
              o.name.c_str(), static_cast<unsigned long long>(s->bytes), s->chunks, s->new_chunks,
              static_cast<unsigned long long>(s->new_bytes), static_cast<unsigned long long>(s->stored_bytes),
              static_cast<unsigned long long>(s->zero_bytes), s->packs);
  return kExitOk;
}

int get(const RepoOptions& o) {
  auto r = open_repo(o);
  if (!r) return report_error(r.error());
  if (auto st = (*r)->get(o.snapshot, o.path); !st) return report_error(st.error());
  std::printf("restored %s to %s\n", o.snapshot.c_str(), o.path.c_str());
  return kExitOk;
}

int list(const RepoOptions& o) {
  auto r = open_repo(o);
  if (!r) return report_error(r.error());
  auto snaps = (*r)->snapshots();
  if (!snaps) return report_error(snaps.error());
  std::printf("%-32s  %-24s  %-35s  %s\n", "ID", "NAME", "TIME", "SIZE");
  for (const auto& s : *snaps) {
    std::printf("%-32s  %-24s  %-35s  %llu\n", s.id.c_str(), s.name.c_str(), s.time.c_str(), static_cast<unsigned long long>(s.size));
  }
  return kExitOk;
}

int check(const RepoOptions& o) {
  auto r = open_repo(o);
  if (!r) return report_error(r.error());
  auto report = (*r)->check(o.read_data);
  for (const auto& p : report.problems) std::fprintf(stderr, "kvbackup: %s\n", p.c_str());
  std::printf("checked %zu packs, %zu blobs%s: %s\n", report.packs, report.blobs, o.read_data ? " (data read)" : "",
              report.ok() ? "no problems" : (std::to_string(report.problems.size()) + " problems").c_str());
  return report.ok() ? kExitOk : kExitFailed;
}

}  // namespace

void register_repo(CLI::App& app, Runner& run) {
  auto o = std::make_shared<RepoOptions>();
  auto* cmd = app.add_subcommand("repo", "A deduplicating, compressed, encrypted repository for disk images (docs/repository.md)");
  cmd->require_subcommand(1);
  auto common = [o](CLI::App* c) {
    c->add_option("--repo", o->repo, "Repository directory")->required();
    c->add_option("--password-file", o->password_file, "File holding the password (else $KVBACKUP_REPO_PASSWORD)");
  };
  auto* i = cmd->add_subcommand("init", "Create a repository");
  common(i);
  i->callback([&run, o] { run = [o] { return init(*o); }; });
  auto* p = cmd->add_subcommand("put", "Store a file or block device as a named snapshot");
  common(p);
  p->add_option("name", o->name, "Snapshot name")->required();
  p->add_option("source", o->path, "File or block device")->required();
  p->callback([&run, o] { run = [o] { return put(*o); }; });
  auto* g = cmd->add_subcommand("get", "Restore a snapshot (by id, or the newest of a name) to a file, sparse where zero");
  common(g);
  g->add_option("snapshot", o->snapshot, "Snapshot id or name")->required();
  g->add_option("target", o->path, "File to write")->required();
  g->callback([&run, o] { run = [o] { return get(*o); }; });
  auto* l = cmd->add_subcommand("list", "List snapshots");
  common(l);
  l->callback([&run, o] { run = [o] { return list(*o); }; });
  auto* c = cmd->add_subcommand("check", "Verify packs, index and snapshots; --read-data authenticates every blob");
  common(c);
  c->add_flag("--read-data", o->read_data, "Read and authenticate every blob");
  c->callback([&run, o] { run = [o] { return check(*o); }; });
}

}  // namespace kvb::cli
