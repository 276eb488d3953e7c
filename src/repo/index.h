// Index: where every stored blob lives (docs/repository.md, "Index").
//
// The repository's index is the union of the files under index/, each
// listing some packs and their blobs. A put adds one file after its packs are
// durable; prune writes one file for everything and then removes the old ones.
// In memory a blob costs one hash-map slot: its pack is a number into a table
// of pack names.
//
// Invariants: find() answers only for blobs some index file names; when two
// files name a blob (two puts stored the same chunk, or a prune was
// interrupted), the first one loaded is kept, and either is a valid copy.
// Concurrent puts on one Repository (copy-data copies volumes in parallel)
// find() and add() at once: both take the index's lock, and what find() and
// pack_name() return stays valid while blobs and packs are added (entries are
// never removed; the blob map's nodes and the pack deque's elements do not move).
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "repo/pack.h"

#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvb::repo {

struct BlobLocation {
  uint32_t pack = 0;  // into Index::pack_name()
  BlobType type = BlobType::kData;
  uint64_t offset = 0;
  uint32_t length = 0;          // stored bytes
  uint32_t plaintext_size = 0;
};

struct BlobIdHash {
  size_t operator()(const BlobId& id) const {  // ids are keyed hashes: any 8 bytes are uniform
    size_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
  }
};

using PackListing = std::pair<std::string, std::vector<PackEntry>>;  // pack name, its blobs

class Index {
 public:
  // Every index file under <repo>/index; an unreadable one is an error naming it.
  static Result<Index> load(const location::Location& loc, const Key256& key);
  // Writes one index file naming `packs`; returns the file's name.
  static Result<std::string> write(location::Location& loc, const Key256& key, const std::vector<PackListing>& packs);

  const BlobLocation* find(const BlobId& id) const {
    std::shared_lock lk(*mu_);
    auto it = blobs_.find(id);
    return it == blobs_.end() ? nullptr : &it->second;
  }
  const std::string& pack_name(uint32_t pack) const {
    std::shared_lock lk(*mu_);
    return packs_[pack];
  }
  void add(const PackListing& pack);
  size_t size() const {
    std::shared_lock lk(*mu_);
    return blobs_.size();
  }
  // Whole-index views, for what holds the repository exclusively (check, prune, stats): no put runs beside them.
  const std::vector<std::string>& files() const { return files_; }  // the index files it was loaded from
  const std::unordered_map<BlobId, BlobLocation, BlobIdHash>& blobs() const { return blobs_; }
  const std::deque<std::string>& packs() const { return packs_; }

 private:
  std::unique_ptr<std::shared_mutex> mu_ = std::make_unique<std::shared_mutex>();  // a pointer: Index moves
  std::unordered_map<BlobId, BlobLocation, BlobIdHash> blobs_;
  std::deque<std::string> packs_;
  std::unordered_map<std::string, uint32_t> pack_numbers_;
  std::vector<std::string> files_;
};

}  // namespace kvb::repo
