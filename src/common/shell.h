// POSIX shell words: quoting values for `sh -c` (the one place kvbackup builds
// shell text, because the Stork rule format says actions run as `sh -c value`)
// and splitting a command line into words to understand what it runs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb {

// Single-quotes a value so that sh reads it back as exactly one word.
std::string shell_quote(std::string_view value);

struct ShellWords {
  std::vector<std::string> words;
  // True when the text is one simple command: no unquoted ; & | < > ( ) ` $
  // redirections, substitutions, pipelines or variable assignments before the
  // command. Only then are `words` exactly the argv sh would run.
  bool simple = true;
};

// nullopt for unbalanced quotes or a trailing backslash.
std::optional<ShellWords> split_shell_words(std::string_view text);

}  // namespace kvb
