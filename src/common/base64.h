// Standard base64 (RFC 4648, with padding), as Kubernetes uses for *-data fields
// and Secret values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvb {

std::string base64_encode(std::string_view data);
// nullopt on malformed input. Whitespace (line breaks) is ignored.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace kvb
