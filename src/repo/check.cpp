// Repository::check: is every byte a snapshot needs where the index says,
// intact? (docs/repository.md, "Check").
//
// Without --read-data: every pack's name matches its content's SHA-256 and
// its trailer opens; every index entry matches its pack's trailer; every
// snapshot is well-formed and every blob it names is indexed. With
// --read-data, every blob is also authenticated, decompressed and checked
// against its id, and every region of every snapshot's image map against the
// bytes its chunks restore (each distinct region once). Packs no index names
// are reported as garbage, not problems: an interrupted put or prune leaves
// them, and prune removes them.
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"

#include <xxhash.h>

#include <unordered_map>
#include <unordered_set>

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
    if (!s.map_problem.empty()) r.problems.push_back("snapshot " + s.id + " (" + s.name + "): " + s.map_problem);
  }
  if (read_data) check_maps(*snaps, r);
  if (r.unindexed_packs > 0 && !r.ok()) {
    r.problems.push_back(std::to_string(r.unindexed_packs) + " packs are in no index: if the index was lost, kvbackup repo rebuild-index recovers it from the packs");
  }
  return r;
}

void Repository::check_maps(const std::vector<Snapshot>& snaps, CheckReport& r) {
  const uint64_t seed = map_seed(key_);
  // A region is known by its fingerprint and the chunks under it: snapshots
  // that share both share the bytes, and are checked once.
  std::unordered_set<XXH128_hash_t, decltype([](const XXH128_hash_t& h) { return static_cast<size_t>(h.low64); }),
                     decltype([](const XXH128_hash_t& a, const XXH128_hash_t& b) { return XXH128_isEqual(a, b) != 0; })>
      verified;
  for (const auto& s : snaps) {
    if (!s.map) continue;
    BlobCache cache;
    RegionHasher hasher(seed);
    size_t wrong = 0;
    for (size_t i = 0; i < s.map->regions.size(); ++i) {
      const uint64_t start = i * kRegionSize, len = std::min(kRegionSize, s.size - start);
      auto under = covering_extents(s.extents, start, len);
      std::string key(reinterpret_cast<const char*>(s.map->regions[i].content.data()), 16);
      key += std::to_string(start) + "/" + std::to_string(len);
      for (const auto& e : under) {
        key += "|" + std::to_string(e.offset) + "," + std::to_string(e.length) + "," + (e.blob ? to_hex(*e.blob) : "0");
      }
      auto id = XXH3_128bits(key.data(), key.size());
      if (verified.count(id)) continue;
      auto bytes = read_image_range(*loc_, index_, key_, s.extents, start, len, cache);
      if (!bytes) continue;  // the blob's damage is reported by the pack pass
      hasher.data(*bytes);
      if (hasher.finish().content != s.map->regions[i].content) {
        if (++wrong <= 3) {
          r.problems.push_back("snapshot " + s.id + " (" + s.name + "): bytes " + std::to_string(start) + ".." + std::to_string(start + len) +
                               " (region " + std::to_string(i) + ") do not match the image map's fingerprint: the map is damaged or forged, "
                               "and a put that reuses it could store wrong bytes (run the next put with --rehash)");
        }
        continue;
      }
      verified.insert(id);
    }
    if (wrong > 3) r.problems.push_back("snapshot " + s.id + " (" + s.name + "): " + std::to_string(wrong) + " regions in all do not match the image map");
  }
}

}  // namespace kvb::repo
