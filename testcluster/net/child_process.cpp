#include "testcluster/net/child_process.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>

#include <csignal>
#include <deque>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testcluster {
namespace asio = boost::asio;

namespace {

class Child : public ChildProcess, public std::enable_shared_from_this<Child> {
 public:
  Child(asio::io_context& io, SpawnedProcess p, ChildCallbacks cb)
      : pid_(p.pid), in_(io, p.stdin_fd), out_(io, p.stdout_fd), err_(io, p.stderr_fd), exit_(io), cb_(std::move(cb)) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) exit_.assign(pidfd);
  }

  ~Child() override {
    if (!reaped_) {
      ::kill(-pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }

  void begin() {
    read(out_, out_buf_, cb_.on_stdout, out_eof_);
    read(err_, err_buf_, cb_.on_stderr, err_eof_);
    if (exit_.is_open()) {
      exit_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](boost::system::error_code) {
        self->reap();
      });
    }
  }

  void write_stdin(std::string data) override {
    if (!in_.is_open()) return;
    pending_.push_back(std::move(data));
    if (pending_.size() == 1) write_next();
  }

  void close_stdin() override {
    closing_stdin_ = true;
    if (pending_.empty()) {
      boost::system::error_code ec;
      in_.close(ec);
    }
  }

  void kill() override {
    if (!reaped_) ::kill(-pid_, SIGKILL);
  }

 private:
  void write_next() {
    asio::async_write(in_, asio::buffer(pending_.front()),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        self->pending_.pop_front();
                        if (ec) {
                          self->pending_.clear();
                          boost::system::error_code ignored;
                          self->in_.close(ignored);
                          return;
                        }
                        if (!self->pending_.empty()) {
                          self->write_next();
                        } else if (self->closing_stdin_) {
                          boost::system::error_code ignored;
                          self->in_.close(ignored);
                        }
                      });
  }

  void read(asio::posix::stream_descriptor& d, std::array<char, 8192>& buf, std::function<void(std::string)>& sink,
            bool& eof) {
    d.async_read_some(asio::buffer(buf), [self = shared_from_this(), &d, &buf, &sink, &eof](boost::system::error_code ec, size_t n) {
      if (n > 0 && sink) sink(std::string(buf.data(), n));
      if (ec) {
        eof = true;
        self->maybe_done();
        return;
      }
      self->read(d, buf, sink, eof);
    });
  }

  void reap() {
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) {
      reaped_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    maybe_done();
  }

  void maybe_done() {
    if (!reaped_ && out_eof_ && err_eof_ && !exit_.is_open()) reap();  // no pidfd: block briefly
    if (reaped_ && out_eof_ && err_eof_ && !reported_) {
      reported_ = true;
      boost::system::error_code ec;
      in_.close(ec);
      exit_.close(ec);
      if (cb_.on_exit) cb_.on_exit(code_);
    }
  }

  pid_t pid_;
  asio::posix::stream_descriptor in_, out_, err_, exit_;
  ChildCallbacks cb_;
  std::array<char, 8192> out_buf_{}, err_buf_{};
  std::deque<std::string> pending_;
  bool out_eof_ = false, err_eof_ = false, reaped_ = false, reported_ = false, closing_stdin_ = false;
  int code_ = -1;
};

}  // namespace

Result<std::shared_ptr<ChildProcess>> ChildProcess::start(EventLoop& loop, const std::vector<std::string>& argv,
                                                          const EnvVars& env, const std::filesystem::path& cwd,
                                                          ChildCallbacks callbacks) {
  std::signal(SIGPIPE, SIG_IGN);
  auto spawned = spawn_process(argv, env, cwd);
  if (!spawned) return spawned.error();
  auto& io = *static_cast<asio::io_context*>(loop.native());
  auto child = std::make_shared<Child>(io, *spawned, std::move(callbacks));
  child->begin();
  return std::shared_ptr<ChildProcess>(child);
}

}  // namespace kvb::testcluster
