// kvb::Secret: a string that must never be printed, logged or recorded.
//
// Tokens, passwords, private keys and repository keys are held as Secret.
// It has no stream operator and no implicit conversion; reveal() is the one,
// greppable, way to read the value, used only where the value goes on the wire
// or to a crypto routine.
#pragma once

#include <string>
#include <string_view>

namespace kvb {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  bool empty() const { return value_.empty(); }
  const std::string& reveal() const { return value_; }
  // What logs and error messages show instead of the value.
  static constexpr std::string_view kMask = "<redacted>";

  bool operator==(const Secret& other) const = default;

 private:
  std::string value_;
};

// Replaces every occurrence of `secret` in `text` with the mask. Used on text
// that comes from outside (plugin stderr, server messages) before it is shown.
std::string redact(std::string text, const Secret& secret);

}  // namespace kvb
