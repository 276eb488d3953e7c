#include "location/s3/s3_lock.h"

#include "common/random.h"
#include "common/time.h"

#include <boost/json.hpp>

#include <random>
#include <signal.h>
#include <unistd.h>

namespace kvb::location::s3 {
namespace json = boost::json;
namespace {

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

struct Holder {
  std::string key, host, mode, time;
  int64_t pid = 0;
  std::chrono::system_clock::time_point expires{};
  bool parsed = false;
};

Holder parse_holder(const std::string& key, const std::string& text) {
  Holder h;
  h.key = key;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return h;
  const auto& o = v.get_object();
  auto str = [&](const char* k) {
    auto* p = o.if_contains(k);
    return p && p->is_string() ? std::string(p->get_string()) : std::string();
  };
  h.host = str("host");
  h.mode = str("mode");
  h.time = str("time");
  if (auto* p = o.if_contains("pid"); p && p->is_int64()) h.pid = p->get_int64();
  auto exp = parse_rfc3339(str("expires"));
  if (!exp || (h.mode != "shared" && h.mode != "exclusive")) return h;
  h.expires = *exp;
  h.parsed = true;
  return h;
}

}  // namespace

S3Lock::S3Lock(std::shared_ptr<Client> client, std::string key, std::string where, LockMode mode, LockTimings timings)
    : client_(std::move(client)), key_(std::move(key)), where_(std::move(where)), mode_(mode), timings_(timings),
      refreshed_(std::chrono::steady_clock::now()) {}

std::string S3Lock::body(std::chrono::system_clock::time_point now) const {
  return json::serialize(json::object{{"host", hostname()},
                                      {"pid", static_cast<int64_t>(::getpid())},
                                      {"mode", mode_ == LockMode::kExclusive ? "exclusive" : "shared"},
                                      {"time", format_rfc3339(now, TimePrecision::kMillis)},
                                      {"expires", format_rfc3339(now + timings_.expiry, TimePrecision::kMillis)}});
}

Result<std::unique_ptr<Lock>> S3Lock::acquire(std::shared_ptr<Client> client, std::string prefix, std::string where, LockMode mode,
                                              std::chrono::milliseconds wait, LockTimings timings) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::mt19937_64 rng(std::random_device{}());
  auto pause = std::chrono::milliseconds(50);
  const std::string me_host = hostname();
  for (;;) {
    std::unique_ptr<S3Lock> lock(new S3Lock(client, prefix + random_hex(32), where, mode, timings));
    auto written = client->put_object(lock->key_, lock->body(std::chrono::system_clock::now()), /*if_none_match=*/true);
    if (!written && written.error().http_status == 501) written = client->put_object(lock->key_, lock->body(std::chrono::system_clock::now()));
    if (!written) return Error(written.error().code, "cannot write a lock object in " + where + ": " + written.error().message);
    KVB_TRY(auto page, client->list(prefix));
    std::string conflict;
    std::vector<std::string> stale;
    const auto now = std::chrono::system_clock::now();
    for (const auto& o : page.objects) {
      if (o.key == lock->key_) continue;
      auto text = client->get_object(o.key);
      if (!text) {
        if (text.error().code == Errc::kNotFound) continue;  // released meanwhile
        return Error(text.error().code, "cannot read lock object " + client->where(o.key) + ": " + text.error().message);
      }
      Holder h = parse_holder(o.key, *text);
      bool dead_here = h.parsed && h.host == me_host && h.pid > 0 && h.pid != ::getpid() && ::kill(static_cast<pid_t>(h.pid), 0) != 0 &&
                       errno == ESRCH;
      if (h.parsed && (now > h.expires + timings.skew || dead_here)) {
        stale.push_back(o.key);
        continue;
      }
      // An unreadable lock object counts as exclusive: never ignore what we cannot judge.
      bool exclusive = !h.parsed || h.mode == "exclusive";
      if (mode == LockMode::kExclusive || exclusive) {
        conflict = h.parsed ? "kvbackup pid " + std::to_string(h.pid) + " on " + h.host + " holds it " + h.mode + " since " + h.time
                            : "lock object " + client->where(o.key) + " is unreadable";
        break;
      }
    }
    if (!stale.empty()) (void)client->delete_objects(stale);
    if (conflict.empty()) {
      S3Lock* raw = lock.get();
      raw->refresher_ = std::thread([raw] { raw->refresh_loop(); });
      return std::unique_ptr<Lock>(std::move(lock));
    }
    (void)client->delete_object(lock->key_);
    lock->key_.clear();  // nothing to release
    if (std::chrono::steady_clock::now() >= deadline) {
      return Error(Errc::kConflict, where + " is locked: " + conflict);
    }
    // Polling, with jitter so that two contenders do not meet again.
    std::uniform_int_distribution<int64_t> jitter(0, pause.count());
    std::this_thread::sleep_for(pause + std::chrono::milliseconds(jitter(rng)));
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

void S3Lock::refresh_loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    wake_.wait_for(lk, timings_.refresh, [&] { return stopping_; });
    if (stopping_) break;
    lk.unlock();
    // Someone who removed our object broke the lock: do not silently recreate it.
    auto there = client_->head_object(key_);
    bool gone = !there && there.error().code == Errc::kNotFound;
    bool rewritten = !gone && there && client_->put_object(key_, body(std::chrono::system_clock::now()));
    lk.lock();
    if (gone) lost_ = true;
    if (rewritten) refreshed_ = std::chrono::steady_clock::now();
  }
}

Status S3Lock::still_held() const {
  std::lock_guard lk(mu_);
  if (lost_) return Error(Errc::kConflict, "the lock on " + where_ + " was lost: its object " + client_->where(key_) + " was removed by someone else");
  if (std::chrono::steady_clock::now() - refreshed_ > timings_.expiry) {
    return Error(Errc::kConflict, "the lock on " + where_ + " may have expired: it could not be refreshed for " +
                                      std::to_string(timings_.expiry.count() / 1000) + " s");
  }
  // A final look: the object must still be there.
  if (auto h = client_->head_object(key_); !h && h.error().code == Errc::kNotFound) {
    return Error(Errc::kConflict, "the lock on " + where_ + " was lost: its object " + client_->where(key_) + " was removed by someone else");
  }
  return ok();
}

S3Lock::~S3Lock() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (!key_.empty()) (void)client_->delete_object(key_);
}

}  // namespace kvb::location::s3
