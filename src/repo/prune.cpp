// Repository::prune and rebuild_index (docs/repository.md, "Forget and prune").
//
// prune, under the exclusive lock:
//   1. the blobs every snapshot needs (any snapshot that cannot be read stops prune);
//   2. per pack: unused entirely -> remove; used below (1 - max_unused) of its
//      bytes -> repack its used blobs (each authenticated first) into new packs;
//   3. new packs, syncfs, one new index naming every blob kept;
//   4. the old index files removed, then the old packs and leftovers.
// A crash before 4 leaves the old index files beside the new one; each names
// packs that still exist, so every copy is valid. A crash during 4 leaves
// unreferenced packs only. Packs younger than the grace period are kept
// whole, with every index entry they have: a put still running may need them.
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace kvb::repo {

namespace {
// A pack's trailer (repo/pack.h): 49 bytes per blob, plus count, seal and length.
constexpr uint64_t kTrailerBytesPerBlob = 49;
constexpr uint64_t kTrailerFixedBytes = 4 + 28 + 4;
}  // namespace

Result<PruneReport> Repository::prune(const PruneOptions& options) {
  KVB_CHECK(need_exclusive("prune"));
  if (options.max_unused < 0 || options.max_unused > 1) {
    return Error(Errc::kInvalidArgument, "--max-unused " + std::to_string(options.max_unused) + " is not a share between 0 and 1");
  }
  KVB_TRY(auto snaps, list_snapshots(*loc_, key_.encryption, true));
  std::unordered_set<BlobId, BlobIdHash> used;
  for (const auto& s : snaps) {
    for (const auto& e : s.extents) {
      if (!e.blob) continue;
      if (!index_.find(*e.blob)) {
        return Error(Errc::kNotFound, "snapshot " + s.id + " (" + s.name + ") needs blob " + to_hex(*e.blob) +
                                          ", which is in no indexed pack; prune stops (run kvbackup repo check, then rebuild-index)");
      }
      used.insert(*e.blob);
    }
  }
  struct PackUse {
    uint64_t used_bytes = 0;
    std::vector<PackEntry> used;
  };
  std::vector<PackUse> use(index_.packs().size());
  for (const auto& id : used) {
    const auto* loc = index_.find(id);
    use[loc->pack].used_bytes += loc->length;
    use[loc->pack].used.push_back(PackEntry{loc->type, id, loc->offset, loc->length, loc->plaintext_size});
  }
  std::vector<location::FileInfo> temporaries;
  KVB_TRY(auto files, list_pack_files(*loc_, &temporaries));
  std::unordered_map<std::string, uint32_t> number;
  for (uint32_t i = 0; i < index_.packs().size(); ++i) number[index_.pack_name(i)] = i;
  std::unordered_set<std::string> on_disk;
  for (const auto& f : files) on_disk.insert(f.name);
  for (uint32_t i = 0; i < use.size(); ++i) {
    if (!use[i].used.empty() && !on_disk.count(index_.pack_name(i))) {
      return Error(Errc::kNotFound, "pack " + index_.pack_name(i) + " holds blobs snapshots need and is missing; prune stops (run kvbackup repo check)");
    }
  }

  // Every indexed blob of each pack, for the young packs kept whole.
  const auto young_since = std::chrono::system_clock::now() - options.grace;
  std::unordered_map<uint32_t, std::vector<PackEntry>> young_entries;
  for (const auto& f : files) {
    auto n = number.find(f.name);
    if (f.mtime > young_since && n != number.end()) young_entries[n->second];
  }
  if (!young_entries.empty()) {
    for (const auto& [id, loc] : index_.blobs()) {
      if (auto y = young_entries.find(loc.pack); y != young_entries.end()) {
        y->second.push_back(PackEntry{loc.type, id, loc.offset, loc.length, loc.plaintext_size});
      }
    }
  }

  PruneReport report;
  std::vector<const PackFile*> remove, repack;
  std::vector<PackListing> keep;
  for (const auto& f : files) {
    report.bytes_before += f.size;
    auto n = number.find(f.name);
    if (f.mtime > young_since) {
      // Written within the grace period: a put still running may need it
      // (whether or not an index names it yet). Kept whole, index entries too.
      ++report.packs_too_young;
      if (n != number.end()) {
        auto entries = std::move(young_entries[n->second]);
        std::sort(entries.begin(), entries.end(), [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
        keep.emplace_back(f.name, std::move(entries));
      }
    } else if (n == number.end() || use[n->second].used.empty()) {
      remove.push_back(&f);
    } else if (static_cast<double>(use[n->second].used_bytes + kTrailerBytesPerBlob * use[n->second].used.size() + kTrailerFixedBytes) <
               (1.0 - options.max_unused) * static_cast<double>(f.size)) {
      repack.push_back(&f);
    } else {
      auto entries = use[n->second].used;
      std::sort(entries.begin(), entries.end(), [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
      keep.emplace_back(f.name, std::move(entries));
    }
  }
  report.packs_removed = remove.size();
  report.packs_repacked = repack.size();
  report.index_files_replaced = index_.files().size();
  report.bytes_after = report.bytes_before;
  for (const auto* f : remove) report.bytes_after -= f->size;
  for (const auto* f : repack) report.bytes_after -= f->size;
  if (options.dry_run) return report;

  // Repack: copy the used blobs as stored (sealed), each authenticated first.
  PackWriter writer(pack_size_);
  std::vector<PackListing> written;
  auto flush = [&]() -> Status {
    if (writer.count() == 0) return ok();
    auto entries = writer.entries();
    auto bytes = writer.finish(key_);
    KVB_TRY(auto name, write_pack_file(*loc_, bytes));
    report.bytes_after += bytes.size();
    written.emplace_back(name, std::move(entries));
    return ok();
  };
  for (const auto* f : repack) {
    KVB_TRY(auto text, loc_->get(f->path));
    auto bytes = as_bytes(text);
    auto& entries = use[number.at(f->name)].used;
    std::sort(entries.begin(), entries.end(), [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
    for (const auto& e : entries) {
      if (e.offset > bytes.size() || e.length > bytes.size() - e.offset) {
        return Error(Errc::kDamaged, "pack " + f->name + " is truncated (blob " + to_hex(e.id) + "); prune stops (run kvbackup repo check)");
      }
      auto stored = bytes.subspan(e.offset, e.length);
      if (auto plain = decode_blob(key_, e.id, stored); !plain) {
        return Error(plain.error().code, "pack " + f->name + ": " + plain.error().message + "; prune stops (run kvbackup repo check)");
      }
      writer.add(EncodedBlob{e.id, std::vector<uint8_t>(stored.begin(), stored.end()), e.plaintext_size, false}, e.type);
      if (writer.size() >= pack_size_) KVB_CHECK(flush());
    }
  }
  KVB_CHECK(flush());
  report.packs_written = written.size();
  KVB_CHECK(loc_->sync());

  keep.insert(keep.end(), written.begin(), written.end());
  KVB_TRY(auto new_index, Index::write(*loc_, key_.encryption, keep));
  std::vector<std::string> old_index;
  for (const auto& file : index_.files()) {
    if (file != new_index) old_index.push_back("index/" + file);
  }
  KVB_CHECK(loc_->remove_files(old_index));
  std::vector<std::string> old_packs;
  for (const auto* f : remove) old_packs.push_back(f->path);
  for (const auto* f : repack) old_packs.push_back(f->path);
  for (const auto& t : temporaries) {
    if (t.mtime <= young_since) old_packs.push_back(t.path);  // a young one may be a pack being written
  }
  KVB_CHECK(loc_->remove_files(old_packs));
  KVB_TRY(index_, Index::load(*loc_, key_.encryption));
  return report;
}

Result<size_t> Repository::rebuild_index() {
  KVB_CHECK(need_exclusive("rebuild-index"));
  KVB_TRY(auto files, list_pack_files(*loc_));
  std::vector<PackListing> packs;
  for (const auto& f : files) {
    KVB_TRY(auto text, loc_->get(f.path));
    auto entries = read_pack_trailer(key_, as_bytes(text), f.name);
    if (!entries) continue;  // a damaged pack stays out of the index; check names it
    packs.emplace_back(f.name, std::move(*entries));
  }
  KVB_TRY(auto old, loc_->list("index"));
  KVB_TRY(auto file, Index::write(*loc_, key_.encryption, packs));
  std::vector<std::string> stale;
  for (const auto& o : old) {
    if (o != file) stale.push_back("index/" + o);
  }
  KVB_CHECK(loc_->remove_files(stale));
  KVB_TRY(index_, Index::load(*loc_, key_.encryption));
  return packs.size();
}

}  // namespace kvb::repo
