#include "repo/index.h"

#include "repo/layout.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::repo {
namespace json = boost::json;

void Index::add(const PackListing& pack) {
  std::unique_lock lk(*mu_);
  auto [it, fresh] = pack_numbers_.try_emplace(pack.first, static_cast<uint32_t>(packs_.size()));
  if (fresh) packs_.push_back(pack.first);
  for (const auto& e : pack.second) {
    blobs_.try_emplace(e.id, BlobLocation{it->second, e.type, e.offset, e.length, e.plaintext_size});
  }
}

Result<Index> Index::load(const location::Location& loc, const Key256& key) {
  Index index;
  KVB_TRY(auto listed, loc.walk("index"));
  std::vector<std::string> files;
  for (const auto& f : listed) {
    if (!f.temporary) files.push_back(f.path);
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    KVB_TRY(auto doc, read_sealed(loc, path, key, SealedKind::kIndex));
    auto bad = [&](const std::string& why) { return Error(Errc::kDamaged, loc.describe() + "/" + path + ": " + why); };
    const auto* packs = doc.as_object().if_contains("packs");
    if (!packs || !packs->is_array()) return bad("no \"packs\" list");
    for (const auto& pk : packs->as_array()) {
      const auto* name = pk.is_object() ? pk.as_object().if_contains("id") : nullptr;
      const auto* blobs = pk.is_object() ? pk.as_object().if_contains("blobs") : nullptr;
      if (!name || !name->is_string() || !blobs || !blobs->is_array()) return bad("a pack without \"id\" or \"blobs\"");
      PackListing listing{std::string(name->as_string()), {}};
      for (const auto& b : blobs->as_array()) {
        const auto* a = b.is_array() ? &b.as_array() : nullptr;
        if (!a || a->size() != 5 || !(*a)[0].is_string()) return bad("pack " + listing.first + ": a malformed blob entry");
        KVB_TRY(auto id, parse_blob_id((*a)[0].as_string()));
        boost::system::error_code nec;
        PackEntry en;
        en.id = id;
        int type = (*a)[1].to_number<int>(nec);
        en.offset = (*a)[2].to_number<uint64_t>(nec);
        en.length = (*a)[3].to_number<uint32_t>(nec);
        en.plaintext_size = (*a)[4].to_number<uint32_t>(nec);
        if (nec || type < 0 || type > 1) return bad("pack " + listing.first + ": blob " + to_hex(id) + " has malformed numbers");
        en.type = static_cast<BlobType>(type);
        listing.second.push_back(en);
      }
      index.add(listing);
    }
    index.files_.push_back(path.substr(path.rfind('/') + 1));
  }
  return index;
}

Result<std::string> Index::write(location::Location& loc, const Key256& key, const std::vector<PackListing>& packs) {
  json::array list;
  for (const auto& [name, entries] : packs) {
    json::array blobs;
    blobs.reserve(entries.size());
    for (const auto& e : entries) {
      blobs.push_back(json::array{to_hex(e.id), static_cast<int>(e.type), e.offset, e.length, e.plaintext_size});
    }
    list.push_back(json::object{{"id", name}, {"blobs", std::move(blobs)}});
  }
  std::string file = random_hex(16);
  KVB_CHECK(write_sealed(loc, "index/" + file, key, SealedKind::kIndex, json::object{{"packs", std::move(list)}}));
  return file;
}

}  // namespace kvb::repo
