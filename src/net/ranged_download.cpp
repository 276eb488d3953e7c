#include "net/ranged_download.h"

#include "common/hex.h"

#include <boost/url/parse.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace kvb::net {
namespace {

using Clock = std::chrono::steady_clock;

struct Target {
  std::string endpoint;  // scheme://host:port
  std::string path;      // encoded path and query
};

Result<Target> split_url(const std::string& url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) return Error(Errc::kInvalidArgument, "download URL is not a URL: " + u.error().message());
  Target t;
  t.endpoint = std::string(u->scheme()) + "://" + std::string(u->encoded_authority());
  t.path = std::string(u->encoded_path());
  if (t.path.empty()) t.path = "/";
  if (u->has_query()) t.path += "?" + std::string(u->encoded_query());
  return t;
}

// Statuses a retry cannot fix.
bool fatal_status(int status) { return status == 401 || status == 403 || status == 404 || status == 410 || status == 416; }

// Connection errors a retry cannot fix: a dialer (a port-forward) the API refused.
bool fatal_error(const Error& e) { return e.code == Errc::kForbidden || e.code == Errc::kUnauthorized; }

Status write_all(int fd, bool socket, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) : ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error(Errc::kIo, std::string("the reader of the download went away: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

class Download {
 public:
  Download(const Target& t, HttpTransport& http, const DownloadOptions& o, uint64_t size)
      : target_(t), http_(http), o_(o), size_(size), pieces_(split(o, size)), count_(pieces_.size()) {
    for (const auto& p : pieces_) total_ += p.second - p.first + 1;
  }

  Result<DownloadResult> run(const Sink& sink) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
    const unsigned n = std::max(1u, std::min<unsigned>(o_.connections, static_cast<unsigned>(std::max<uint64_t>(count_, 1))));
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < n; ++i) workers.emplace_back([this] { work(); });
    for (uint64_t w = 0; w < count_; ++w) {
      std::string body;
      {
        std::unique_lock lk(m_);
        while (!ready_.count(w) && !error_) {
          cv_.wait_for(lk, std::chrono::milliseconds(200));
          if (o_.cancelled && o_.cancelled() && !error_) error_ = Error(Errc::kCancelled, "the download was cancelled");
        }
        if (error_) break;
        body = std::move(ready_[w]);
        ready_.erase(w);
      }
      if (o_.hash_gaps_as_zeros) hash_zeros(sha.get(), pieces_[w].first);
      EVP_DigestUpdate(sha.get(), body.data(), body.size());
      hashed_ = pieces_[w].second + 1;
      const uint64_t got = body.size();
      if (auto s = sink(std::move(body)); !s) {
        std::lock_guard lk(m_);
        if (!error_) error_ = s.error();
        break;
      }
      {
        std::lock_guard lk(m_);
        written_ = w + 1;
      }
      cv_.notify_all();
      done_ += got;
      if (o_.progress) o_.progress(done_, total_);
    }
    {
      std::lock_guard lk(m_);
      if (error_) stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers) t.join();
    if (error_) return *error_;
    if (o_.hash_gaps_as_zeros) hash_zeros(sha.get(), size_);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(sha.get(), md, &len);
    DownloadResult r;
    r.bytes = total_;
    r.object_size = size_;
    r.sha256 = hex_encode({md, len});
    r.retried_ranges = retried_;
    return r;
  }

 private:
  void work() {
    const uint64_t window = o_.connections + 1;
    for (;;) {
      uint64_t i;
      {
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return stop_ || error_ || next_ >= count_ || next_ < written_ + window; });
        if (stop_ || error_ || next_ >= count_) return;
        i = next_++;
      }
      auto body = fetch(i);
      {
        std::lock_guard lk(m_);
        if (!body) {
          if (!error_) error_ = body.error();
        } else {
          ready_[i] = std::move(*body);
        }
      }
      cv_.notify_all();
    }
  }

  // The digest takes zeros from where it stopped up to `to` (a gap between `only` ranges).
  void hash_zeros(EVP_MD_CTX* sha, uint64_t to) {
    static const std::vector<uint8_t> zeros(1 << 20);
    while (hashed_ < to) {
      const uint64_t n = std::min<uint64_t>(zeros.size(), to - hashed_);
      EVP_DigestUpdate(sha, zeros.data(), n);
      hashed_ += n;
    }
  }

  bool stopping() {
    std::lock_guard lk(m_);
    return stop_ || error_.has_value();
  }

  // The ranges to fetch, as inclusive (first, last) byte pairs of at most range_size bytes.
  static std::vector<std::pair<uint64_t, uint64_t>> split(const DownloadOptions& o, uint64_t size) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    auto add = [&](uint64_t off, uint64_t len) {
      for (uint64_t at = off; at < off + len; at += o.range_size) out.emplace_back(at, std::min(off + len, at + o.range_size) - 1);
    };
    if (!o.only) {
      add(0, size);
    } else {
      for (const auto& [off, len] : *o.only) add(off, len);
    }
    return out;
  }

  Result<std::string> fetch(uint64_t i) {
    const uint64_t first = pieces_[i].first, last = pieces_[i].second;
    const std::string range = "bytes=" + std::to_string(first) + "-" + std::to_string(last);
    std::optional<Clock::time_point> first_failure;
    auto delay = std::chrono::milliseconds(100);
    bool counted = false;
    for (;;) {
      HttpRequest req{"GET", target_.path, o_.headers, {}, false};
      req.headers.emplace_back("Range", range);
      bool sent = false;
      auto r = http_.exchange(req, &sent);
      std::string why;
      if (!r && fatal_error(r.error())) return r.error();
      if (!r) {
        why = r.error().message;
      } else if (r->status == 206 || (r->status == 200 && first == 0 && last + 1 == size_)) {
        // A 206 must say which bytes it holds: other bytes of the same size
        // would otherwise be written at this range's place.
        const std::string got = r->status == 206 ? r->header("Content-Range") : "";
        const std::string want = "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size_);
        const auto slash = got.rfind('/');
        if (r->status == 206 && slash != std::string::npos && got.substr(slash + 1) != std::to_string(size_)) {
          return Error(Errc::kDamaged, http_.display() + " changed the image's size during the download (Content-Range \"" + got +
                                           "\" for " + range + ")");
        }
        if (r->status == 206 && got != want) {
          why = "range " + range + " came back as Content-Range \"" + got + "\"";
        } else if (r->body.size() == last - first + 1) {
          return std::move(r->body);
        } else {
          why = "range " + range + " came back with " + std::to_string(r->body.size()) + " bytes";
        }
      } else if (fatal_status(r->status)) {
        return Error(r->status == 401 ? Errc::kUnauthorized : r->status == 403 ? Errc::kForbidden : Errc::kNotFound,
                     http_.display() + " answered " + std::to_string(r->status) + " to the download of " + range);
      } else {
        why = "HTTP " + std::to_string(r->status);
      }
      auto now = Clock::now();
      if (!first_failure) first_failure = now;
      if (!counted) {
        counted = true;
        std::lock_guard lk(m_);
        ++retried_;
      }
      if (now - *first_failure >= o_.retry_budget) {
        return Error(Errc::kTransport, "the download of " + range + " from " + http_.display() + " kept failing for " +
                                           std::to_string(o_.retry_budget.count() / 1000) + " s: " + why);
      }
      for (auto slept = std::chrono::milliseconds(0); slept < delay; slept += std::chrono::milliseconds(50)) {
        if (stopping()) return Error(Errc::kCancelled, "stopped");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
  }

  const Target& target_;
  HttpTransport& http_;
  const DownloadOptions& o_;
  const uint64_t size_;
  const std::vector<std::pair<uint64_t, uint64_t>> pieces_;
  const uint64_t count_;
  uint64_t total_ = 0, done_ = 0;
  uint64_t hashed_ = 0;  // the digest covers [0, hashed_) (hash_gaps_as_zeros)
  std::mutex m_;
  std::condition_variable cv_;
  uint64_t next_ = 0, written_ = 0;
  std::map<uint64_t, std::string> ready_;
  std::optional<Error> error_;
  bool stop_ = false;
  unsigned retried_ = 0;
};

}  // namespace

Result<DownloadResult> download(const std::string& url, int fd, const DownloadOptions& options) {
  struct stat st {};
  const bool socket = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  return download_into(url, [fd, socket](std::string&& bytes) { return write_all(fd, socket, bytes); }, options);
}

Result<DownloadResult> download_into(const std::string& url, const Sink& sink, const DownloadOptions& options) {
  if (options.range_size == 0) return Error(Errc::kInvalidArgument, "download range size must not be 0");
  KVB_TRY(auto target, split_url(url));
  TransportOptions t = options.transport;
  t.max_idle = std::max<size_t>(t.max_idle, options.connections);
  KVB_TRY(auto http, HttpTransport::create(target.endpoint, t));
  // The size: HEAD, retried like a range while the server is not ready.
  uint64_t size = 0;
  auto started = Clock::now();
  for (auto delay = std::chrono::milliseconds(100);; delay = std::min(delay * 2, std::chrono::milliseconds(2000))) {
    HttpRequest head{"HEAD", target.path, options.headers, {}, true};
    bool sent = false;
    auto r = http->exchange(head, &sent);
    std::string why;
    if (r && r->status == 200) {
      std::string len = r->header("Content-Length");
      char* end = nullptr;
      errno = 0;
      unsigned long long v = std::strtoull(len.c_str(), &end, 10);
      if (len.empty() || errno != 0 || *end != '\0') {
        return Error(Errc::kParse, http->display() + " gave no usable Content-Length (\"" + len + "\") for the download");
      }
      size = v;
      break;
    }
    if (!r && fatal_error(r.error())) return r.error();
    if (r && fatal_status(r->status)) {
      return Error(r->status == 401 ? Errc::kUnauthorized : r->status == 403 ? Errc::kForbidden : Errc::kNotFound,
                   http->display() + " answered " + std::to_string(r->status) + " to HEAD");
    }
    why = r ? "HTTP " + std::to_string(r->status) : r.error().message;
    if (Clock::now() - started >= options.retry_budget) {
      return Error(Errc::kTransport, "HEAD of the download at " + http->display() + " kept failing: " + why);
    }
    if (options.cancelled && options.cancelled()) return Error(Errc::kCancelled, "the download was cancelled");
    std::this_thread::sleep_for(delay);
  }
  if (options.expect_size != 0 && size != options.expect_size) {
    return Error(Errc::kInvalidArgument, http->display() + " offers " + std::to_string(size) + " bytes where " +
                                             std::to_string(options.expect_size) + " were expected");
  }
  uint64_t prev = 0;
  for (const auto& [off, len] : options.only.value_or(std::vector<std::pair<uint64_t, uint64_t>>{})) {
    if (len == 0 || off < prev || off + len > size) {
      return Error(Errc::kInvalidArgument, "download range [" + std::to_string(off) + ", +" + std::to_string(len) +
                                               ") is empty, out of order or beyond the " + std::to_string(size) + "-byte object");
    }
    prev = off + len;
  }
  Download d(target, *http, options, size);
  return d.run(sink);
}

}  // namespace kvb::net
