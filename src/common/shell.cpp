#include "common/shell.h"

namespace kvb {

std::string shell_quote(std::string_view v) {
  if (!v.empty() && v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") ==
                        std::string_view::npos) {
    return std::string(v);
  }
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::optional<ShellWords> split_shell_words(std::string_view t) {
  ShellWords r;
  std::string cur;
  bool in_word = false;
  bool command_seen = false;
  auto finish = [&] {
    if (!in_word) return;
    // NAME=value before the command is an assignment, not an argument.
    if (!command_seen) {
      auto eq = cur.find('=');
      if (eq != std::string::npos && eq > 0 && cur.find_first_of("'\"") == std::string::npos) r.simple = false;
    }
    command_seen = true;
    r.words.push_back(cur);
    cur.clear();
    in_word = false;
  };
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      finish();
    } else if (c == '\'') {
      size_t end = t.find('\'', i + 1);
      if (end == std::string_view::npos) return std::nullopt;
      cur.append(t.substr(i + 1, end - i - 1));
      in_word = true;
      i = end;
    } else if (c == '"') {
      in_word = true;
      size_t j = i + 1;
      for (; j < t.size() && t[j] != '"'; ++j) {
        if (t[j] == '\\' && j + 1 < t.size() && (t[j + 1] == '"' || t[j + 1] == '\\' || t[j + 1] == '$' || t[j + 1] == '`')) {
          cur += t[++j];
        } else {
          if (t[j] == '$' || t[j] == '`') r.simple = false;
          cur += t[j];
        }
      }
      if (j >= t.size()) return std::nullopt;
      i = j;
    } else if (c == '\\') {
      if (i + 1 >= t.size()) return std::nullopt;
      cur += t[++i];
      in_word = true;
    } else {
      if (std::string_view(";&|<>()`$").find(c) != std::string_view::npos) r.simple = false;
      if (c == '#' && !in_word) break;  // a comment
      cur += c;
      in_word = true;
    }
  }
  finish();
  return r;
}

}  // namespace kvb
