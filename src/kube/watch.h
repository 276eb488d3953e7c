// Watching the API: a list+watch cache of one resource (an "informer").
//
// Informer lists the resource (in a namespace or cluster-wide, filtered by
// label/field selectors), then watches from the list's resourceVersion. It
// resumes after disconnects and server timeouts from the last resourceVersion
// it saw (bookmarks included), and re-lists when the server answers 410 Gone.
// The cache is readable from any thread; wait_for()/wait_until() block until a
// predicate over the cache holds, which is how callers wait for events without
// polling (e.g. a VolumeSnapshot's status.creationTime).
//
// Invariants: the cache only moves forward in resourceVersion order as the
// server delivers it; after a re-list it holds exactly the listed objects
// (vanished ones are reported as deletions). Event handlers run on the client's
// io thread and must not block. Keep the Client alive while the informer runs:
// destroying the Client stops its informers (waiters then get kCancelled).
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

namespace kvb::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view watch_event_type_name(WatchEventType t);

struct WatchEvent {
  WatchEventType type;
  boost::json::object object;
};

// Parses one line of a watch stream ({"type": ..., "object": {...}}).
Result<WatchEvent> parse_watch_event(std::string_view line);

struct InformerOptions {
  std::string label_selector;
  std::string field_selector;
  std::chrono::seconds watch_timeout{300};  // timeoutSeconds asked of the server per watch request
  std::function<void(const WatchEvent&)> on_event;  // io thread; optional
};

struct InformerStats {
  uint64_t lists = 0;       // initial list + re-lists after 410
  uint64_t watches = 0;     // watch requests made (1 + reconnects)
  uint64_t events = 0;
  uint64_t disconnects = 0; // watch streams that ended with an error
};

using ObjectCache = std::map<std::string, boost::json::object>;  // key: "namespace/name"

class Informer : public std::enable_shared_from_this<Informer> {
 public:
  // Starts listing and watching in the background; returns at once.
  static std::shared_ptr<Informer> start(std::shared_ptr<Client> client, ResourceRef resource, std::string ns,
                                         InformerOptions options = {});
  ~Informer();

  // Blocks until the first list has filled the cache (or the deadline/error).
  Status wait_synced(std::chrono::steady_clock::time_point deadline);

  std::optional<boost::json::object> get(const std::string& key) const;
  std::vector<boost::json::object> items() const;

  // Blocks until pred(cache) holds, the deadline passes (kTimeout), stop is
  // requested (kCancelled) or the informer fails (its error).
  Status wait_until(const std::function<bool(const ObjectCache&)>& pred,
                    std::chrono::steady_clock::time_point deadline, std::stop_token stop = {});
  // Like wait_until, for a predicate that depends only on the objects of
  // `keys`: woken by changes of those keys alone, so that many threads each
  // waiting for their own objects do not all wake on every event.
  Status wait_keys(const std::vector<std::string>& keys, const std::function<bool(const ObjectCache&)>& pred,
                   std::chrono::steady_clock::time_point deadline, std::stop_token stop = {});
  // Blocks until pred(object) holds for one key; the object is nullptr while absent.
  Result<boost::json::object> wait_for(const std::string& key,
                                       const std::function<bool(const boost::json::object*)>& pred,
                                       std::chrono::steady_clock::time_point deadline, std::stop_token stop = {});

  InformerStats stats() const;
  void stop();

  struct Loop;  // the io-thread side (watch.cpp)

 private:
  Informer(std::shared_ptr<Client> client, ResourceRef resource, std::string ns, InformerOptions options);

  friend struct Loop;
  // Not an owning reference: the caller keeps the Client alive while the
  // informer runs (destroying the Client stops it).
  std::weak_ptr<detail::Runtime> runtime_;
  ResourceRef resource_;
  std::string namespace_;
  InformerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable_any changed_;
  std::multimap<std::string, std::condition_variable_any*> key_waiters_;  // wait_keys(), under mu_
  ObjectCache cache_;
  bool synced_ = false;
  std::optional<Error> failed_;
  InformerStats stats_;
  std::shared_ptr<Loop> loop_;
};

// Waits until pred holds for one object, using a watch on that object alone.
Result<boost::json::object> wait_for_object(std::shared_ptr<Client> client, const ResourceRef& resource,
                                            const std::string& ns, const std::string& name,
                                            const std::function<bool(const boost::json::object*)>& pred,
                                            std::chrono::milliseconds timeout, std::stop_token stop = {});

}  // namespace kvb::kube
