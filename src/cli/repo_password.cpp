#include "cli/repo_password.h"

#include "common/bounded_read.h"
#include "common/printable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvb::cli {
namespace {

// Reads a line from the terminal with echo off; only when standard input is
// a terminal too (a put from a pipe, a script, a test never waits on a prompt).
Result<Secret> prompt(const char* question) {
  int tty = ::isatty(STDIN_FILENO) == 1 ? ::open("/dev/tty", O_RDWR | O_CLOEXEC) : -1;
  if (tty < 0) return Error(Errc::kInvalidArgument, "no repository password: set KVBACKUP_REPO_PASSWORD or pass --password-file FILE");
  termios old{};
  bool restore = ::tcgetattr(tty, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  (void)!::write(tty, question, std::strlen(question));
  std::string line;
  char c;
  while (line.size() < 4096 && ::read(tty, &c, 1) == 1 && c != '\n') line.push_back(c);
  if (restore) ::tcsetattr(tty, TCSAFLUSH, &old);
  (void)!::write(tty, "\n", 1);
  ::close(tty);
  if (line.empty()) return Error(Errc::kInvalidArgument, "no repository password given");
  return Secret(line);
}

// The password file's path and mode, never its content.
void warn_if_readable_by_others(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 044) == 0) return;
  std::fprintf(stderr, "kvbackup: warning: password file %s can be read by %s (mode %04o); chmod 600 it\n", printable(path).c_str(),
               (st.st_mode & 004) ? "every user" : "its group", static_cast<unsigned>(st.st_mode & 07777));
}

}  // namespace

Result<Secret> repository_password(const std::string& password_file, bool confirm) {
  if (!password_file.empty()) {
    KVB_TRY(auto text, read_file_bounded(password_file, "password file"));
    warn_if_readable_by_others(password_file);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) return Error(Errc::kInvalidArgument, "--password-file " + password_file + ": the file is empty");
    return Secret(text);
  }
  if (const char* env = std::getenv("KVBACKUP_REPO_PASSWORD"); env && *env) return Secret(env);
  KVB_TRY(auto first, prompt("repository password: "));
  if (confirm) {
    KVB_TRY(auto again, prompt("the same password again: "));
    if (again.reveal() != first.reveal()) return Error(Errc::kInvalidArgument, "the two passwords differ");
  }
  return first;
}

}  // namespace kvb::cli
