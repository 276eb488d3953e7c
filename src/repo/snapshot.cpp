#include "repo/snapshot.h"

#include "common/time.h"
#include "repo/layout.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::repo {
namespace json = boost::json;

void append_extent(std::vector<Extent>& extents, Extent e) {
  if (e.length == 0) return;
  if (!e.blob && !extents.empty() && !extents.back().blob && extents.back().offset + extents.back().length == e.offset) {
    extents.back().length += e.length;
    return;
  }
  extents.push_back(e);
}

Status validate_extents(const Snapshot& s) {
  uint64_t at = 0;
  for (size_t i = 0; i < s.extents.size(); ++i) {
    const auto& e = s.extents[i];
    if (e.offset != at || e.length == 0) {
      return Error(Errc::kDamaged, "snapshot " + s.id + ": extent " + std::to_string(i) + " at offset " + std::to_string(e.offset) +
                                     " does not follow the previous one (expected offset " + std::to_string(at) + ")");
    }
    at += e.length;
  }
  if (at != s.size) {
    return Error(Errc::kDamaged, "snapshot " + s.id + ": extents cover " + std::to_string(at) + " bytes, size says " + std::to_string(s.size));
  }
  return ok();
}

Result<std::string> save_snapshot(location::Location& loc, const Key256& key, const Snapshot& s) {
  json::array extents;
  extents.reserve(s.extents.size());
  for (const auto& e : s.extents) {
    json::value blob = e.blob ? json::value(to_hex(*e.blob)) : json::value(nullptr);
    extents.push_back(json::array{e.offset, e.length, std::move(blob)});
  }
  json::array tags(s.tags.begin(), s.tags.end());
  json::object doc{{"name", s.name}, {"source", s.source}, {"time", s.time}, {"size", s.size},
                   {"tags", std::move(tags)}, {"extents", std::move(extents)}};
  if (s.map) doc["map"] = map_to_json(*s.map);
  std::string id = random_hex(16);
  KVB_CHECK(write_sealed(loc, "snapshots/" + id, key, SealedKind::kSnapshot, doc));
  return id;
}

Result<Snapshot> load_snapshot(const location::Location& loc, const Key256& key, const std::string& id, bool with_extents) {
  auto path = "snapshots/" + id;
  KVB_TRY(auto doc, read_sealed(loc, path, key, SealedKind::kSnapshot));
  const auto& o = doc.as_object();
  auto bad = [&](const std::string& why) { return Error(Errc::kDamaged, loc.describe() + "/" + path + ": " + why); };
  Snapshot s;
  s.id = id;
  const auto* name = o.if_contains("name");
  const auto* time = o.if_contains("time");
  const auto* size = o.if_contains("size");
  if (!name || !name->is_string() || !time || !time->is_string() || !size || !size->is_number()) {
    return bad("\"name\", \"time\" or \"size\" is missing");
  }
  s.name = std::string(name->as_string());
  s.time = std::string(time->as_string());
  boost::system::error_code ec;
  s.size = size->to_number<uint64_t>(ec);
  if (ec) return bad("\"size\" is not a byte count");
  if (const auto* src = o.if_contains("source"); src && src->is_string()) s.source = std::string(src->as_string());
  if (const auto* tags = o.if_contains("tags"); tags && tags->is_array()) {
    for (const auto& t : tags->as_array()) {
      if (t.is_string()) s.tags.emplace_back(t.as_string());
    }
  }
  if (!with_extents) return s;
  const auto* extents = o.if_contains("extents");
  if (!extents || !extents->is_array()) return bad("\"extents\" is missing");
  s.extents.reserve(extents->as_array().size());
  for (const auto& ev : extents->as_array()) {
    const auto* a = ev.is_array() ? &ev.as_array() : nullptr;
    if (!a || a->size() != 3) return bad("a malformed extent");
    Extent e;
    e.offset = (*a)[0].to_number<uint64_t>(ec);
    e.length = (*a)[1].to_number<uint64_t>(ec);
    if (ec) return bad("an extent with malformed numbers");
    if ((*a)[2].is_string()) {
      KVB_TRY(e.blob, parse_blob_id((*a)[2].as_string()));
    } else if (!(*a)[2].is_null()) {
      return bad("an extent whose blob is neither an id nor null");
    }
    s.extents.push_back(e);
  }
  KVB_CHECK(validate_extents(s));
  if (const auto* m = o.if_contains("map")) {
    auto map = map_from_json(*m, s.size);
    if (map) {
      s.map = std::move(*map);
    } else {
      s.map_problem = loc.describe() + "/" + path + ": " + map.error().message;
    }
  }
  return s;
}

Result<std::vector<Snapshot>> list_snapshots(const location::Location& loc, const Key256& key, bool with_extents) {
  std::vector<Snapshot> out;
  KVB_TRY(auto names, loc.list("snapshots"));
  for (const auto& name : names) {
    KVB_TRY(auto s, load_snapshot(loc, key, name, with_extents));
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time != b.time ? a.time < b.time : a.id < b.id; });
  return out;
}

Result<Snapshot> find_snapshot(const location::Location& loc, const Key256& key, const std::string& id_or_name) {
  KVB_TRY(auto all, list_snapshots(loc, key, false));
  std::string id;
  for (const auto& s : all) {
    if (s.id == id_or_name || s.name == id_or_name) id = s.id;  // oldest first: the newest of a name wins
  }
  if (id.empty()) return Error(Errc::kNotFound, "no snapshot \"" + id_or_name + "\" in " + loc.describe());
  return load_snapshot(loc, key, id, true);
}

}  // namespace kvb::repo
