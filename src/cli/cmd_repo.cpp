// kvbackup repo init | put | get | list | check | forget | prune | stats |
// rebuild-index  (docs/repository.md)
//
// The password comes from $KVBACKUP_REPO_PASSWORD, --password-file, or a
// prompt on the terminal; never from argv. --repo is a directory or an
// s3:// location (docs/location.md).
#include "common/allocator.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/repo_password.h"
#include "common/atomic_file.h"
#include "common/bounded_read.h"
#include "common/duration.h"
#include "common/printable.h"
#include "location/location.h"
#include "repo/repository.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <malloc.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvb::cli {

namespace {

struct RepoOptions {
  std::string repo, password_file, name, path, snapshot;
  std::vector<std::string> tags, ids;
  bool read_data = false, dry_run = false, prune = false, overwrite = false, no_parent = false, rehash = false;
  std::string grace = "1h";
  double lock_wait_s = 0;
  uint64_t pack_size_mib = 16;
  int compression_level = repo::kDefaultCompressionLevel;
  repo::RetentionPolicy keep;
  double max_unused = 0.2;
};

// Every message of a repo command goes out escaped (common/printable.h): it
// may hold snapshot names, tags and file names a hostile repository chose.
int report(const Error& e) {
  Error shown = e;
  shown.message = printable(e.message);
  return report_error(shown);
}

Result<std::unique_ptr<repo::Repository>> open_repo(const RepoOptions& o, repo::LockMode mode, bool load_index = true) {
  tune_allocator_for_streaming();  // puts and gets stream through large buffers (common/allocator.h)
  KVB_TRY(auto pw, repository_password(o.password_file));
  repo::OpenOptions opts;
  opts.mode = mode;
  opts.lock_wait = std::chrono::milliseconds(static_cast<int64_t>(o.lock_wait_s * 1000));
  opts.load_index = load_index;
  auto loc = location::open(o.repo, location::OpenMode::kExisting);
  if (!loc) {
    if (loc.error().code == Errc::kNotFound) return Error(Errc::kNotFound, "no repository at " + o.repo + " (" + loc.error().message + ")");
    return loc.error();
  }
  return repo::Repository::open(std::shared_ptr<location::Location>(std::move(*loc)), pw, opts);
}

#define KVB_OPEN_OR_REPORT(var, ...)     \
  auto var##_r = open_repo(__VA_ARGS__); \
  if (!var##_r) return report(var##_r.error()); \
  auto& var = *var##_r

int init(const RepoOptions& o) {
  auto pw = repository_password(o.password_file, true);
  if (!pw) return report(pw.error());
  repo::InitOptions opts;
  opts.pack_size = o.pack_size_mib << 20;
  auto loc = location::open(o.repo, location::OpenMode::kCreate);
  if (!loc) return report(loc.error());
  if (auto st = repo::Repository::init(**loc, *pw, opts); !st) return report(st.error());
  std::printf("created repository %s\n", printable((*loc)->describe()).c_str());
  return kExitOk;
}

// Chunk and pack buffers (128 KiB to 18 MiB) are allocated in one thread and
// freed in another; glibc's adaptive mmap threshold would move them into the
// per-thread heaps, which then keep their peak. A fixed threshold maps and
// unmaps them, which keeps the peak RSS near what is in flight.
void bound_heap() { ::mallopt(M_MMAP_THRESHOLD, 128 << 10); }

int put(const RepoOptions& o) {
  bound_heap();
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kShared);
  ProgressLine line("put " + printable(o.name));
  repo::PutOptions opts;
  opts.tags = o.tags;
  opts.compression_level = o.compression_level;
  opts.parent = o.rehash ? repo::ParentMode::kRehash : o.no_parent ? repo::ParentMode::kNone : repo::ParentMode::kAuto;
  opts.progress = [&](uint64_t done, uint64_t total) { line.update(done, total); };
  auto s = r->put(o.name, o.path, opts);
  line.finish();
  if (!s) return report(s.error());
  std::printf("snapshot %s (%s): %s, %zu chunks, %zu new (%s new, %s stored), %s of zeros and holes not stored, %zu packs\n",
              s->snapshot.c_str(), printable(o.name).c_str(), human_bytes(s->bytes).c_str(), s->chunks, s->new_chunks, human_bytes(s->new_bytes).c_str(),
              human_bytes(s->stored_bytes).c_str(), human_bytes(s->zero_bytes + s->hole_bytes).c_str(), s->packs);
  if (!s->full_reason.empty()) {
    std::printf("%s\n", s->full_reason.c_str());
  } else if (!s->parent.empty()) {
    std::printf("parent %s: %s reused unread by the chunker, %s chunked and hashed (%zu of %zu regions changed)\n", s->parent.c_str(),
                human_bytes(s->reused_bytes).c_str(), human_bytes(s->chunked_bytes).c_str(), s->changed_regions, s->regions);
  }
  if (!s->map_mismatches.empty()) {
    std::string at;
    for (size_t i = 0; i < s->map_mismatches.size() && i < 5; ++i) at += (i ? ", " : "") + std::to_string(s->map_mismatches[i]);
    if (s->map_mismatches.size() > 5) at += " and " + std::to_string(s->map_mismatches.size() - 5) + " more";
    std::fprintf(stderr,
                 "error: %zu regions (at offsets %s) fingerprinted like parent %s but hold other bytes%s: a fingerprint collision or a "
                 "damaged image map. This snapshot (%s) was stored from every byte and is right; parent %s and the incremental "
                 "snapshots before it may restore wrong bytes there (run kvbackup repo check --read-data)\n",
                 s->map_mismatches.size(), at.c_str(), s->parent.c_str(),
                 s->map_unverified.empty() ? "" : (" or could not be compared (" + s->map_unverified + ")").c_str(), s->snapshot.c_str(),
                 s->parent.c_str());
    return kExitFailed;
  }
  return kExitOk;
}

int get(const RepoOptions& o) {
  bound_heap();
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kShared);
  ProgressLine line("get " + printable(o.snapshot));
  repo::GetOptions opts;
  opts.overwrite = o.overwrite;
  opts.progress = [&](uint64_t done, uint64_t total) { line.update(done, total); };
  auto st = r->get(o.snapshot, o.path, opts);
  line.finish();
  if (!st) return report(st.error());
  if (o.path != "-") std::printf("restored %s to %s\n", printable(o.snapshot).c_str(), printable(o.path).c_str());
  return kExitOk;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

void print_snapshots(const std::vector<repo::Snapshot>& snaps, const char* header = nullptr) {
  if (header) std::printf("%s\n", header);
  std::printf("%-32s  %-20s  %-30s  %10s  %s\n", "ID", "NAME", "TIME", "SIZE", "TAGS");
  for (const auto& s : snaps) {
    std::printf("%-32s  %-20s  %-30s  %10s  %s\n", printable(s.id).c_str(), printable(s.name).c_str(), printable(s.time).c_str(),
                human_bytes(s.size).c_str(), printable(joined(s.tags)).c_str());
  }
}

int list(const RepoOptions& o) {
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kShared);
  auto snaps = r->snapshots();
  if (!snaps) return report(snaps.error());
  print_snapshots(*snaps);
  return kExitOk;
}

int check(const RepoOptions& o) {
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kShared);
  auto report = r->check(o.read_data);
  for (const auto& p : report.problems) std::fprintf(stderr, "kvbackup: %s\n", printable(p).c_str());
  std::printf("checked %zu snapshots, %zu packs, %zu blobs%s: %s\n", report.snapshots, report.packs, report.blobs,
              o.read_data ? " (all data read and authenticated)" : "",
              report.ok() ? "no problems" : (std::to_string(report.problems.size()) + " problems").c_str());
  if (report.unindexed_packs > 0) std::printf("%zu packs are in no index (left by an interrupted put or prune); prune removes them\n", report.unindexed_packs);
  return report.ok() ? kExitOk : kExitFailed;
}

int prune_with(repo::Repository& r, const RepoOptions& o) {
  repo::PruneOptions opts;
  opts.max_unused = o.max_unused;
  opts.dry_run = o.dry_run;
  auto grace = parse_duration(o.grace);
  if (!grace) return report(Error(Errc::kInvalidArgument, "--grace-period " + o.grace + ": " + grace.error().message));
  opts.grace = std::chrono::duration_cast<std::chrono::seconds>(*grace);
  auto p = r.prune(opts);
  if (!p) return report(p.error());
  std::printf("%s%zu packs removed, %zu repacked into %zu, %zu index files replaced; %s -> %s\n", o.dry_run ? "would prune: " : "pruned: ",
              p->packs_removed, p->packs_repacked, p->packs_written, p->index_files_replaced, human_bytes(p->bytes_before).c_str(),
              human_bytes(p->bytes_after).c_str());
  if (p->packs_too_young > 0) {
    std::printf("%zu packs written within the grace period (%s) were kept as they are\n", p->packs_too_young, o.grace.c_str());
  }
  return kExitOk;
}

int forget(const RepoOptions& o) {
  if (!o.ids.empty() && !o.keep.empty()) {
    return report(Error(Errc::kInvalidArgument, "give snapshot ids or --keep-* rules, not both"));
  }
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kExclusive);
  auto f = o.ids.empty() ? r->forget(o.keep, o.dry_run) : r->forget_ids(o.ids, o.dry_run);
  if (!f) return report(f.error());
  print_snapshots(f->kept, "keep:");
  print_snapshots(f->removed, o.dry_run ? "would remove:" : "removed:");
  return o.prune ? prune_with(*r, o) : kExitOk;
}

int prune(const RepoOptions& o) {
  bound_heap();
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kExclusive);
  return prune_with(*r, o);
}

int stats(const RepoOptions& o) {
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kShared);
  auto s = r->stats();
  if (!s) return report(s.error());
  double ratio = s->stored_bytes > 0 ? static_cast<double>(s->logical_bytes) / static_cast<double>(s->stored_bytes) : 0;
  std::printf("snapshots:        %zu\nimages, in all:   %s\ndistinct data:    %s in %zu blobs\nstored:           %s in %zu packs\n"
              "space saving:     %.1fx (dedup, zeros and compression)\n",
              s->snapshots, human_bytes(s->logical_bytes).c_str(), human_bytes(s->unique_bytes).c_str(), s->blobs,
              human_bytes(s->stored_bytes).c_str(), s->packs, ratio);
  return kExitOk;
}

int rebuild_index(const RepoOptions& o) {
  KVB_OPEN_OR_REPORT(r, o, repo::LockMode::kExclusive, false);
  auto n = r->rebuild_index();
  if (!n) return report(n.error());
  std::printf("rebuilt the index from %zu packs\n", *n);
  return kExitOk;
}

}  // namespace

void register_repo(CLI::App& app, CommandAction& run) {
  auto o = std::make_shared<RepoOptions>();
  auto* cmd = app.add_subcommand("repo", "A deduplicating, compressed, encrypted repository for disk images (docs/repository.md)");
  cmd->require_subcommand(1);
  auto add = [&](const char* name, const char* help, int (*fn)(const RepoOptions&)) {
    auto* c = cmd->add_subcommand(name, help);
    c->add_option("--repo", o->repo, "Repository: a directory, or s3://BUCKET/PREFIX (docs/location.md)")->required();
    c->add_option("--password-file", o->password_file, "File holding the password (else $KVBACKUP_REPO_PASSWORD, else a prompt)");
    c->add_option("--lock-wait", o->lock_wait_s, "Seconds to wait for a repository another kvbackup holds (default: fail at once)")->check(CLI::NonNegativeNumber);
    c->callback([&run, o, fn] { run = [o, fn] { return fn(*o); }; });
    return c;
  };
  add("init", "Create a repository", init)
      ->add_option("--pack-size-mib", o->pack_size_mib, "Close a pack once it holds this many MiB")
      ->check(CLI::Range(1, 1024));
  auto* p = add("put", "Store a file, block device or - (standard input) as a named snapshot", put);
  p->add_option("name", o->name, "Snapshot name (the same name over time makes a series for forget)")->required();
  p->add_option("source", o->path, "File, block device, or - for standard input")->required();
  p->add_option("--tag", o->tags, "A tag to record with the snapshot (repeatable)");
  p->add_option("--compression-level", o->compression_level, "zstd level, 0 (none) to 19 (default 2, see docs/repository.md)")
      ->check(CLI::Range(0, 19));
  auto* no_parent = p->add_flag("--no-parent", o->no_parent,
                                "Read, chunk and hash every byte instead of reusing the previous snapshot of this name where its image map "
                                "says a region is unchanged");
  p->add_flag("--rehash", o->rehash,
              "Read, chunk and hash every byte, and compare each region the previous snapshot's map calls unchanged with its bytes "
              "(catches a fingerprint collision; run now and then)")
      ->excludes(no_parent);
  auto* g = add("get", "Restore a snapshot (by id, or the newest of a name) to a file (sparse), a block device or - (standard output)", get);
  g->add_option("snapshot", o->snapshot, "Snapshot id or name")->required();
  g->add_option("target", o->path, "File, block device, or - for standard output")->required();
  g->add_flag("--overwrite", o->overwrite, "Replace an existing file (atomically, at the end) or write over a block device");
  add("list", "List snapshots", list);
  add("check", "Verify packs, index and snapshots; --read-data authenticates every blob", check)
      ->add_flag("--read-data", o->read_data, "Read and authenticate every blob");
  auto* f = add("forget", "Remove snapshots: those given by id, or those the --keep-* rules do not keep (per name)", forget);
  f->add_option("ids", o->ids, "Snapshot ids to remove");
  f->add_option("--keep-last", o->keep.last, "Keep the newest N")->check(CLI::NonNegativeNumber);
  f->add_option("--keep-daily", o->keep.daily, "Keep the newest of each of the last N days")->check(CLI::NonNegativeNumber);
  f->add_option("--keep-weekly", o->keep.weekly, "Keep the newest of each of the last N ISO weeks")->check(CLI::NonNegativeNumber);
  f->add_option("--keep-monthly", o->keep.monthly, "Keep the newest of each of the last N months")->check(CLI::NonNegativeNumber);
  f->add_flag("--dry-run", o->dry_run, "Show what would be removed");
  f->add_flag("--prune", o->prune, "Prune afterwards");
  f->add_option("--grace-period", o->grace, "With --prune: keep packs written less than this long ago (default 1h; a put may still need them)");
  auto* pr = add("prune", "Remove data no snapshot needs; repack packs that are mostly unused", prune);
  pr->add_option("--max-unused", o->max_unused, "Repack a pack once this share of it is unused (0..1, default 0.2)")->check(CLI::Range(0.0, 1.0));
  pr->add_flag("--dry-run", o->dry_run, "Show what would be removed");
  pr->add_option("--grace-period", o->grace, "Keep packs written less than this long ago (default 1h; a put may still need them)");
  add("stats", "Sizes: images, distinct data, stored bytes, the saving", stats);
  add("rebuild-index", "Rebuild the index from the packs (after index files were lost or damaged)", rebuild_index);
}

}  // namespace kvb::cli
