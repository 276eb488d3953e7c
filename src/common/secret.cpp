#include "common/secret.h"

namespace kvb {

std::string redact(std::string text, const Secret& secret) {
  const std::string& s = secret.reveal();
  if (s.size() < 4) return text;  // too short to be a credential worth masking
  for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos)) {
    text.replace(pos, s.size(), Secret::kMask);
    pos += Secret::kMask.size();
  }
  return text;
}

}  // namespace kvb
