// kvb::Error and kvb::Result<T>: how every layer of kvbackup reports failure.
//
// Errors are values (LevelDB style). A Result<T> holds either a T or an Error;
// Status is Result<void>. An Error carries a category (Errc) that callers branch
// on, a human message that names the file/field/host concerned, and, when it came
// from the Kubernetes API, the HTTP status and the Status.reason.
//
// Invariant: an Error's message never contains a secret (token, key, password).
// Code that builds messages from user input that may hold secrets must redact it
// first (see common/redact.h).
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvb {

enum class Errc {
  kInvalidArgument,    // bad input from the user: flags, files, documents
  kNotFound,           // HTTP 404 / missing file / unknown object
  kAlreadyExists,      // HTTP 409 reason AlreadyExists
  kConflict,           // HTTP 409 (resourceVersion conflict)
  kGone,               // HTTP 410 (watch resourceVersion too old)
  kBadRequest,         // HTTP 400
  kInvalid,            // HTTP 422 (object failed validation)
  kUnauthorized,       // HTTP 401
  kForbidden,          // HTTP 403
  kMethodNotAllowed,   // HTTP 405
  kTooManyRequests,    // HTTP 429
  kInternal,           // HTTP 500
  kServiceUnavailable, // HTTP 503
  kServerTimeout,      // HTTP 504 or Status reason ServerTimeout
  kTimeout,            // a deadline on our side expired
  kCancelled,          // the operation was cancelled (signal, caller)
  kTransport,          // connection refused/reset/closed, DNS, protocol errors
  kTls,                // TLS handshake or certificate verification failed
  kConfig,             // kubeconfig / configuration problem
  kIo,                 // local file system error
  kParse,              // malformed JSON/YAML/protocol data
  kDamaged,            // stored data failed its integrity check (a repository's packs, index, keys)
  kUnknown,
};

std::string_view errc_name(Errc c);

struct Error {
  Errc code = Errc::kUnknown;
  std::string message;
  int http_status = 0;   // 0 when the error did not come from an HTTP response
  std::string reason;    // Kubernetes Status.reason, when known
  std::optional<std::chrono::milliseconds> retry_after;  // from a Retry-After header

  Error() = default;
  Error(Errc c, std::string msg) : code(c), message(std::move(msg)) {}

  // "NotFound: pods \"x\" not found" style one-liner for users.
  std::string describe() const;

  // Returns a copy whose message is "<prefix>: <message>".
  Error with_context(std::string_view prefix) const;

  // True for failures a retry may cure: 429, 5xx, server timeouts, transport.
  bool is_transient() const;
};

// Thrown only by Result<T>::value() on an error (a programming error in
// kvbackup: callers check has_value() first).
class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(const Error& e) : std::runtime_error(e.describe()), error_(e) {}
  const Error& error() const { return error_; }

 private:
  Error error_;
};

// Found by argument-dependent lookup from boost::system::result.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;
using Status = Result<void>;

inline Status ok() { return {}; }

}  // namespace kvb

// KVB_TRY(auto x, expr): evaluates a Result-returning expr; on error returns the
// error from the enclosing function, else declares x with the value.
// KVB_CHECK(expr): returns the error of a failed Status/Result, else continues.
#define KVB_CONCAT_INNER_(a, b) a##b
#define KVB_CONCAT_(a, b) KVB_CONCAT_INNER_(a, b)
#define KVB_TRY(decl, expr)                                              \
  auto KVB_CONCAT_(kvb_try_, __LINE__) = (expr);                         \
  if (!KVB_CONCAT_(kvb_try_, __LINE__)) return KVB_CONCAT_(kvb_try_, __LINE__).error(); \
  decl = std::move(*KVB_CONCAT_(kvb_try_, __LINE__))
#define KVB_CHECK(expr)                        \
  do {                                         \
    auto kvb_check_ = (expr);                  \
    if (!kvb_check_) return kvb_check_.error(); \
  } while (0)
