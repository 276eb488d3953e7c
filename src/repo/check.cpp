// Repository::check: is every byte a snapshot needs where the index says,
// intact? (docs/repository.md, "Check").
//
// Without --read-data: every pack's name matches its content's SHA-256 and
// its trailer opens; every index entry matches its pack's trailer; every
// snapshot is well-formed and every blob it names is indexed. With
// --read-data, every blob is also authenticated, decompressed and checked
// against its id. Packs no index names are reported as garbage, not
// problems: an interrupted put or prune leaves them, and prune removes them.
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"

#include <unordered_map>

namespace kvb::repo {

CheckReport Repository::check(bool read_data) {
  CheckReport r;
  auto files = list_pack_files(*loc_);
  if (!files) {
    r.problems.push_back(files.error().message);
    return r;
  }
  // What each pack really holds: blob id -> (offset, length).
  std::unordered_map<std::string, std::unordered_map<BlobId, std::pair<uint64_t, uint32_t>, BlobIdHash>> held;
  for (const auto& f : *files) {
    ++r.packs;
    auto text = loc_->get(f.path);
    if (!text) {
      r.problems.push_back("pack " + f.name + ": " + text.error().message);
      continue;
    }
    auto bytes = as_bytes(*text);
    if (pack_id(bytes) != f.name) r.problems.push_back("pack " + f.name + ": content does not match its name (damaged)");
    auto entries = read_pack_trailer(key_, bytes, f.name);
    if (!entries) {
      r.problems.push_back(entries.error().message);
      continue;
    }
    auto& blobs = held[f.name];
    for (const auto& e : *entries) {
      ++r.blobs;
      blobs[e.id] = {e.offset, e.length};
      if (!read_data) continue;
      auto plain = decode_blob(key_, e.id, bytes.subspan(e.offset, e.length));
      if (!plain) r.problems.push_back("pack " + f.name + ": " + plain.error().message);
    }
  }
  std::unordered_map<std::string, bool> indexed;
  for (const auto& [id, loc] : index_.blobs()) {
    const auto& pack = index_.pack_name(loc.pack);
    indexed[pack] = true;
    auto p = held.find(pack);
    if (p == held.end()) {
      r.problems.push_back("index: blob " + to_hex(id) + " is in pack " + pack + ", which is missing or unreadable");
      continue;
    }
    auto b = p->second.find(id);
    if (b == p->second.end() || b->second.first != loc.offset || b->second.second != loc.length) {
      r.problems.push_back("index: blob " + to_hex(id) + " at offset " + std::to_string(loc.offset) + " of pack " + pack +
                           ": the pack's trailer disagrees");
    }
  }
  for (const auto& f : *files) r.unindexed_packs += indexed.count(f.name) ? 0 : 1;
  auto snaps = list_snapshots(*loc_, key_.encryption, true);
  if (!snaps) {
    r.problems.push_back(snaps.error().message);
    return r;
  }
  for (const auto& s : *snaps) {
    ++r.snapshots;
    size_t missing = 0;
    for (const auto& e : s.extents) {
      if (e.blob && !index_.find(*e.blob) && ++missing <= 3) {
        r.problems.push_back("snapshot " + s.id + " (" + s.name + "): blob " + to_hex(*e.blob) + " at offset " + std::to_string(e.offset) +
                             " is in no indexed pack");
      }
    }
    if (missing > 3) r.problems.push_back("snapshot " + s.id + " (" + s.name + "): " + std::to_string(missing) + " blobs in all are in no indexed pack");
  }
  if (r.unindexed_packs > 0 && !r.ok()) {
    r.problems.push_back(std::to_string(r.unindexed_packs) + " packs are in no index: if the index was lost, kvbackup repo rebuild-index recovers it from the packs");
  }
  return r;
}

}  // namespace kvb::repo
