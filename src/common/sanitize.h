// What kvbackup shows or records of text that came from outside (API servers,
// guests, rule commands, URLs the user typed):
// - redact_credentials() masks what looks like a credential: "Bearer <t>",
//   "Basic <t>", Authorization headers, token/password/secret/signature query
//   parameters and key=value pairs, and user:password in URLs;
// - redact_url() removes the user information and credential parameters of a URL;
// - sanitize_foreign() also makes the text safe for a terminal
//   (common/printable.h, printable_text: control characters, escape sequences,
//   bidi overrides and bytes that are not UTF-8 are shown escaped).
// Invariant: the output never contains the masked values, whatever the input.
#pragma once

#include "common/printable.h"

#include <string>
#include <string_view>

namespace kvb {

std::string redact_credentials(std::string_view text);
std::string redact_url(std::string_view url);
// printable_text(redact_credentials(text)): for anything printed or recorded from outside.
std::string sanitize_foreign(std::string_view text);

}  // namespace kvb
