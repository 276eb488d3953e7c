#include "common/error.h"

namespace kvb {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::kInvalidArgument: return "InvalidArgument";
    case Errc::kNotFound: return "NotFound";
    case Errc::kAlreadyExists: return "AlreadyExists";
    case Errc::kConflict: return "Conflict";
    case Errc::kGone: return "Gone";
    case Errc::kBadRequest: return "BadRequest";
    case Errc::kInvalid: return "Invalid";
    case Errc::kUnauthorized: return "Unauthorized";
    case Errc::kForbidden: return "Forbidden";
    case Errc::kMethodNotAllowed: return "MethodNotAllowed";
    case Errc::kTooManyRequests: return "TooManyRequests";
    case Errc::kInternal: return "InternalError";
    case Errc::kServiceUnavailable: return "ServiceUnavailable";
    case Errc::kServerTimeout: return "ServerTimeout";
    case Errc::kTimeout: return "Timeout";
    case Errc::kCancelled: return "Cancelled";
    case Errc::kTransport: return "TransportError";
    case Errc::kTls: return "TLSError";
    case Errc::kConfig: return "ConfigError";
    case Errc::kIo: return "IOError";
    case Errc::kParse: return "ParseError";
    case Errc::kDamaged: return "DataDamaged";
    case Errc::kUnknown: return "Unknown";
  }
  return "Unknown";
}

std::string Error::describe() const {
  std::string out(errc_name(code));
  if (http_status != 0) out += " (HTTP " + std::to_string(http_status) + ")";
  if (!message.empty()) out += ": " + message;
  return out;
}

Error Error::with_context(std::string_view prefix) const {
  Error copy = *this;
  copy.message = std::string(prefix) + ": " + message;
  return copy;
}

bool Error::is_transient() const {
  switch (code) {
    case Errc::kTooManyRequests:
    case Errc::kInternal:
    case Errc::kServiceUnavailable:
    case Errc::kServerTimeout:
    case Errc::kTransport:
      return true;
    default:
      return http_status >= 500;
  }
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw ErrorException(e);
}

}  // namespace kvb
