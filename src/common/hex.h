// Lower-case hexadecimal of bytes: digests, ids and tokens as text.
#pragma once

#include <span>
#include <string>

namespace kvb {

// Two lower-case hex digits per byte, in order.
std::string hex_encode(std::span<const unsigned char> bytes);

}  // namespace kvb
