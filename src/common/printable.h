// Text that came from outside (a snapshot name a user typed, a repository a
// hostile storage handed back) made safe to print on a terminal, and the
// check that refuses such text where kvbackup stores a name.
//
// printable() escapes what could move the cursor, rewrite the screen or
// reorder what is shown: C0 controls and DEL (\n, \t, \x1b, ...), C1 controls
// (\u0085), Unicode bidirectional overrides (\u202e), bytes that are not
// UTF-8 (\xff), and the backslash itself, so that escaped text reads back
// unambiguously. Everything else (printable UTF-8) is kept as it is.
#pragma once

#include "common/error.h"

#include <string>
#include <string_view>

namespace kvb {

std::string printable(std::string_view text);
// The same for messages and multi-line output: newlines and tabs are kept, and
// backslashes are left as they are; everything else printable() escapes is escaped.
std::string printable_text(std::string_view text);

// Ok when `text` is non-empty UTF-8 of at most `max_bytes` without any of the
// characters printable() would escape (a backslash is fine); else an error
// naming `what` and quoting the text as it is (whoever prints the error
// escapes it, once).
Status check_name(std::string_view text, std::string_view what, size_t max_bytes = 255);

}  // namespace kvb
