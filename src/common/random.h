// Random identifiers from the operating system's CSPRNG (OpenSSL RAND_bytes):
// RFC 4122 version-4 UUIDs and short lower-case hex tokens. Thread-safe.
#pragma once

#include <string>

namespace kvb {

// "0b3c8f4e-5d0a-4c6e-9b1f-2a7d9e3c4b5a": version 4, variant 10.
std::string random_uuid();
// `chars` lower-case hex digits.
std::string random_hex(size_t chars);

}  // namespace kvb
