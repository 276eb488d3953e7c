#include "kube/watch.h"

#include "kube/api_status.h"
#include "kube/detail/runtime.h"
#include "kube/object.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace kvb::kube {
namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string_view watch_event_type_name(WatchEventType t) {
  switch (t) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
    case WatchEventType::kError: return "ERROR";
  }
  return "?";
}

Result<WatchEvent> parse_watch_event(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return Error(Errc::kParse, "watch event is not a JSON object");
  std::string_view type = str_at(v, {"type"});
  const json::object* obj = object_at(v, {"object"});
  if (!obj) return Error(Errc::kParse, "watch event has no object");
  WatchEvent e;
  if (type == "ADDED") e.type = WatchEventType::kAdded;
  else if (type == "MODIFIED") e.type = WatchEventType::kModified;
  else if (type == "DELETED") e.type = WatchEventType::kDeleted;
  else if (type == "BOOKMARK") e.type = WatchEventType::kBookmark;
  else if (type == "ERROR") e.type = WatchEventType::kError;
  else return Error(Errc::kParse, "watch event has unknown type \"" + std::string(type.substr(0, 40)) + "\"");
  e.object = *obj;
  return e;
}

// The io-thread side of an Informer.
struct Informer::Loop : std::enable_shared_from_this<Informer::Loop> {
  std::weak_ptr<Informer> owner;
  detail::Runtime& rt;  // valid while run() runs: the runtime waits for it to end
  ResourceRef resource;
  std::string ns;
  InformerOptions options;
  detail::CallState state;
  std::string resource_version;

  Loop(std::weak_ptr<Informer> o, std::shared_ptr<Client> c, ResourceRef r, std::string n, InformerOptions opt)
      : owner(std::move(o)), rt(c->runtime()), resource(std::move(r)), ns(std::move(n)),
        options(std::move(opt)) {}

  std::vector<std::pair<std::string, std::string>> selector_params() const {
    std::vector<std::pair<std::string, std::string>> q;
    if (!options.label_selector.empty()) q.emplace_back("labelSelector", options.label_selector);
    if (!options.field_selector.empty()) q.emplace_back("fieldSelector", options.field_selector);
    return q;
  }

  void publish(const WatchEvent& e) {
    if (options.on_event) options.on_event(e);
  }

  // Runs f under the informer's lock, then wakes the waiters: those of `key`
  // only when one object changed (a key), every waiter otherwise.
  template <class F>
  bool with_owner(F&& f, const std::string* key = nullptr) {
    auto o = owner.lock();
    if (!o) return false;
    {
      std::lock_guard lock(o->mu_);
      f(*o);
      // Under the lock: a key waiter deregisters (and dies) only while holding it.
      if (key) {
        auto [lo, hi] = o->key_waiters_.equal_range(*key);
        for (auto it = lo; it != hi; ++it) it->second->notify_all();
      } else {
        for (auto& [k, cv] : o->key_waiters_) cv->notify_all();
      }
    }
    o->changed_.notify_all();
    return true;
  }

  asio::awaitable<Status> relist() {
    ObjectCache fresh;
    std::string cont, rv;
    for (;;) {
      auto q = selector_params();
      q.emplace_back("limit", "500");
      if (!cont.empty()) q.emplace_back("continue", cont);
      HttpRequest req;
      req.target = resource.collection_path(ns) + query_string(q);
      auto self_state = std::shared_ptr<detail::CallState>(shared_from_this(), &state);
      auto resp = co_await rt.call(req, CallOptions{}, self_state);
      if (!resp) co_return resp.error();
      boost::system::error_code ec;
      json::value v = json::parse(resp->body, ec);
      if (ec) co_return Error(Errc::kParse, rt.describe("GET", req.target) + ": list is not JSON");
      if (auto* items = array_at(v, {"items"})) {
        for (const auto& item : *items) {
          if (item.is_object()) fresh.emplace(key_of(item), item.get_object());
        }
      }
      rv = std::string(str_at(v, {"metadata", "resourceVersion"}));
      cont = std::string(str_at(v, {"metadata", "continue"}));
      if (cont.empty()) break;
    }
    resource_version = rv;
    std::vector<WatchEvent> events;
    bool alive = with_owner([&](Informer& inf) {
      for (const auto& [k, obj] : inf.cache_) {
        if (!fresh.count(k)) events.push_back({WatchEventType::kDeleted, obj});
      }
      for (const auto& [k, obj] : fresh) {
        auto it = inf.cache_.find(k);
        if (it == inf.cache_.end()) events.push_back({WatchEventType::kAdded, obj});
        else if (it->second != obj) events.push_back({WatchEventType::kModified, obj});
      }
      inf.cache_ = std::move(fresh);
      inf.synced_ = true;
      inf.stats_.lists++;
    });
    if (!alive) co_return Error(Errc::kCancelled, "informer stopped");
    for (const auto& e : events) publish(e);
    co_return ok();
  }

  // Applies one event; returns an error for ERROR events (Gone for 410).
  Status apply(WatchEvent&& e) {
    if (e.type == WatchEventType::kError) {
      json::value st(e.object);
      int code = static_cast<int>(int_at(st, {"code"}).value_or(500));
      return error_from_response(code, json::serialize(e.object), "", "watch " + resource.qualified_name());
    }
    json::value ov(e.object);
    std::string rv(resource_version_of(ov));
    if (!rv.empty()) resource_version = rv;
    if (e.type == WatchEventType::kBookmark) return ok();
    std::string key = key_of(ov);
    bool alive = with_owner(
        [&](Informer& inf) {
          if (e.type == WatchEventType::kDeleted) inf.cache_.erase(key);
          else inf.cache_[key] = e.object;
          inf.stats_.events++;
        },
        &key);
    if (!alive) return Error(Errc::kCancelled, "informer stopped");
    publish(e);
    return ok();
  }

  template <class Stream>
  asio::awaitable<Status> stream_events(Stream& s, beast::flat_buffer& buffer, const std::string& target) {
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    auto& lowest = beast::get_lowest_layer(s);
    lowest.expires_after(rt.options().request_timeout);
    auto [hec, hn] = co_await http::async_read_header(s, buffer, parser, use_tuple);
    if (hec) co_return detail::transport_error(rt.endpoint(), rt.describe("GET", target) + ": watch", hec);
    int status = static_cast<int>(parser.get().result_int());
    std::string pending;
    char buf[65536];
    auto idle = options.watch_timeout + std::chrono::seconds(60);
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      lowest.expires_after(idle);
      auto [ec, n] = co_await http::async_read_some(s, buffer, parser, use_tuple);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        if (state.cancelled) co_return Error(Errc::kCancelled, "informer stopped");
        co_return detail::transport_error(rt.endpoint(), rt.describe("GET", target) + ": watch stream", ec);
      }
      size_t got = sizeof buf - parser.get().body().size;
      pending.append(buf, got);
      if (status != 200) {
        if (pending.size() > (1 << 20)) break;
        continue;
      }
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (line.empty()) continue;
        auto ev = parse_watch_event(line);
        if (!ev) co_return ev.error().with_context(rt.describe("GET", target));
        if (auto st = apply(std::move(*ev)); !st) co_return st;
      }
      pending.erase(0, start);
    }
    if (status != 200) {
      co_return error_from_response(status, pending, "", rt.describe("GET", target));
    }
    co_return ok();  // the server ended the watch (timeoutSeconds): resume
  }

  asio::awaitable<Status> watch_once() {
    auto q = selector_params();
    q.emplace_back("watch", "1");
    q.emplace_back("allowWatchBookmarks", "true");
    q.emplace_back("timeoutSeconds", std::to_string(options.watch_timeout.count()));
    if (!resource_version.empty()) q.emplace_back("resourceVersion", resource_version);
    std::string target = resource.collection_path(ns) + query_string(q);
    with_owner([](Informer& inf) { inf.stats_.watches++; });
    auto material = co_await rt.auth();
    if (!material) co_return material.error();
    auto conn = co_await rt.connect(std::chrono::steady_clock::now() + rt.options().connect_timeout, state);
    if (!conn) co_return conn.error();
    http::request<http::string_body> req{http::verb::get, rt.endpoint().base_path + target, 11};
    rt.decorate(req, *material);
    state.active = conn->get();
    Status result = co_await std::visit(
        [&](auto& s) -> asio::awaitable<Status> {
          beast::get_lowest_layer(s).expires_after(rt.options().request_timeout);
          auto [wec, wn] = co_await http::async_write(s, req, use_tuple);
          if (wec) co_return detail::transport_error(rt.endpoint(), rt.describe("GET", target) + ": watch", wec);
          co_return co_await stream_events(s, (*conn)->buffer, target);
        },
        (*conn)->stream);
    state.active = nullptr;
    (*conn)->close();
    co_return result;
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    rt.enter(&state);
    std::chrono::milliseconds delay{0};
    bool need_list = true;
    while (!state.cancelled) {
      if (need_list) {
        Status st = co_await relist();
        if (state.cancelled) break;
        if (!st) {
          if (st.error().code == Errc::kForbidden || st.error().code == Errc::kUnauthorized ||
              st.error().code == Errc::kNotFound) {
            with_owner([&](Informer& inf) { inf.failed_ = st.error(); });
            break;
          }
          delay = std::min(std::max(delay * 2, std::chrono::milliseconds(100)), std::chrono::milliseconds(5000));
          co_await rt.sleep(delay, state);
          continue;
        }
        need_list = false;
      }
      uint64_t events_before = 0;
      with_owner([&](Informer& inf) { events_before = inf.stats_.events; });
      Status st = co_await watch_once();
      if (state.cancelled) break;
      if (st) {
        delay = std::chrono::milliseconds(0);
        continue;  // normal end of a watch: resume from resource_version
      }
      if (st.error().code == Errc::kGone) {
        need_list = true;  // our resourceVersion is too old
        continue;
      }
      bool progressed = false;
      with_owner([&](Informer& inf) {
        inf.stats_.disconnects++;
        progressed = inf.stats_.events > events_before;
      });
      if (st.error().code == Errc::kForbidden || st.error().code == Errc::kUnauthorized) {
        with_owner([&](Informer& inf) { inf.failed_ = st.error(); });
        break;
      }
      delay = progressed ? std::chrono::milliseconds(0)
                         : std::min(std::max(delay * 2, std::chrono::milliseconds(50)), std::chrono::milliseconds(5000));
      co_await rt.sleep(delay, state);
    }
    with_owner([&](Informer& inf) {  // wake waiters so that they see stop/failure
      if (!inf.failed_) inf.failed_ = Error(Errc::kCancelled, "informer for " + resource.qualified_name() + " stopped");
    });
    rt.leave(&state);
  }
};

Informer::Informer(std::shared_ptr<Client> client, ResourceRef resource, std::string ns, InformerOptions options)
    : runtime_(client->runtime_ptr()), resource_(std::move(resource)), namespace_(std::move(ns)), options_(std::move(options)) {}

std::shared_ptr<Informer> Informer::start(std::shared_ptr<Client> client, ResourceRef resource, std::string ns,
                                          InformerOptions options) {
  std::shared_ptr<Informer> inf(new Informer(client, resource, ns, options));
  inf->loop_ = std::make_shared<Loop>(inf, client, std::move(resource), std::move(ns), std::move(options));
  auto loop = inf->loop_;
  asio::co_spawn(client->runtime().io(), loop->run(), asio::detached);
  return inf;
}

Informer::~Informer() { stop(); }

void Informer::stop() {
  if (!loop_) return;
  auto loop = loop_;
  if (auto rt = runtime_.lock()) asio::post(rt->io(), [loop] { loop->state.cancel(); });
  {
    std::lock_guard lock(mu_);
    if (!failed_) failed_ = Error(Errc::kCancelled, "informer stopped");
    for (auto& [k, cv] : key_waiters_) cv->notify_all();
  }
  changed_.notify_all();
}

Status Informer::wait_synced(std::chrono::steady_clock::time_point deadline) {
  return wait_until([this](const ObjectCache&) { return synced_; }, deadline);
}

std::optional<json::object> Informer::get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<json::object> Informer::items() const {
  std::lock_guard lock(mu_);
  std::vector<json::object> out;
  out.reserve(cache_.size());
  for (const auto& [k, v] : cache_) out.push_back(v);
  return out;
}

InformerStats Informer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Status Informer::wait_until(const std::function<bool(const ObjectCache&)>& pred,
                            std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  bool held = changed_.wait_until(lock, stop, deadline, [&] { return pred(cache_) || failed_.has_value(); });
  if (pred(cache_)) return ok();
  if (failed_) return *failed_;
  if (stop.stop_requested()) return Error(Errc::kCancelled, "wait for " + resource_.qualified_name() + " cancelled");
  (void)held;
  return Error(Errc::kTimeout, "timed out waiting for " + resource_.qualified_name());
}

Status Informer::wait_keys(const std::vector<std::string>& keys, const std::function<bool(const ObjectCache&)>& pred,
                           std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  std::condition_variable_any cv;
  std::unique_lock lock(mu_);
  std::vector<std::multimap<std::string, std::condition_variable_any*>::iterator> registered;
  for (const auto& k : keys) registered.push_back(key_waiters_.emplace(k, &cv));
  cv.wait_until(lock, stop, deadline, [&] { return pred(cache_) || failed_.has_value(); });
  for (auto it : registered) key_waiters_.erase(it);
  if (pred(cache_)) return ok();
  if (failed_) return *failed_;
  if (stop.stop_requested()) return Error(Errc::kCancelled, "wait for " + resource_.qualified_name() + " cancelled");
  return Error(Errc::kTimeout, "timed out waiting for " + resource_.qualified_name());
}

Result<json::object> Informer::wait_for(const std::string& key, const std::function<bool(const json::object*)>& pred,
                                        std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  auto st = wait_until(
      [&](const ObjectCache& c) {
        auto it = c.find(key);
        return pred(it == c.end() ? nullptr : &it->second);
      },
      deadline, std::move(stop));
  if (!st) return st.error().with_context(key);
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? json::object() : it->second;
}

Result<json::object> wait_for_object(std::shared_ptr<Client> client, const ResourceRef& resource,
                                     const std::string& ns, const std::string& name,
                                     const std::function<bool(const json::object*)>& pred,
                                     std::chrono::milliseconds timeout, std::stop_token stop) {
  InformerOptions o;
  o.field_selector = "metadata.name=" + name;
  auto inf = Informer::start(client, resource, ns, o);  // `client` stays alive for the wait
  auto r = inf->wait_for(resource.namespaced ? ns + "/" + name : name, pred,
                         std::chrono::steady_clock::now() + timeout, std::move(stop));
  inf->stop();
  return r;
}

}  // namespace kvb::kube
