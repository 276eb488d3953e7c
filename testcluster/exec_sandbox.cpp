#include "testcluster/exec_sandbox.h"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#ifndef KVB_TESTCLUSTER_VIRT_FREEZER
#define KVB_TESTCLUSTER_VIRT_FREEZER ""
#endif

namespace kvb::testcluster {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace {

constexpr const char* kBwrap = "/usr/bin/bwrap";
constexpr const char* kHostBin = "/.host-bin";  // the host's /usr/bin, under the image's links

// The virt-freezer program: next to the running binary, else where the build put it.
fs::path freezer_program() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path next = self.parent_path() / "kvb-testcluster-virt-freezer";
    if (::access(next.c_str(), X_OK) == 0) return next;
  }
  return KVB_TESTCLUSTER_VIRT_FREEZER;
}

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

Status write_new(const fs::path& p, const std::string& text) {
  std::error_code ec;
  if (fs::exists(p, ec)) return ok();
  std::ofstream f(p);
  f << text;
  f.close();
  if (!f) return Error(Errc::kIo, "cannot write " + p.string());
  return ok();
}

// The container's own /etc (and the mount points of what it borrows from the host's).
Status ensure_container(const SandboxContainer& c) {
  std::error_code ec;
  fs::create_directories(c.dir / "root", ec);
  fs::create_directories(c.dir / "etc" / "alternatives", ec);
  if (ec) return Error(Errc::kIo, "cannot make " + (c.dir / "etc").string() + ": " + ec.message());
  KVB_CHECK(write_new(c.dir / "etc" / "hostname", c.pod + "\n"));
  KVB_CHECK(write_new(c.dir / "etc" / "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t" + c.pod + "\n"));
  KVB_CHECK(write_new(c.dir / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
  KVB_CHECK(write_new(c.dir / "etc" / "group", "root:x:0:\nnogroup:x:65534:\n"));
  KVB_CHECK(write_new(c.dir / "etc" / "ld.so.cache", ""));
  return ok();
}

}  // namespace

const char* ExecSandbox::container_path() { return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; }

std::optional<std::string> ExecSandbox::unavailable() const {
  if (::access(kBwrap, X_OK) != 0) return std::string("bubblewrap is not installed (") + kBwrap + "; scripts/deps installs it)";
  if (!executable(freezer_program())) return "the test cluster's virt-freezer program (kvb-testcluster-virt-freezer) is not built";
  return std::nullopt;
}

bool ExecSandbox::resolves(const SandboxContainer& c, const std::string& program) const {
  // The container's path of a program -> where it is on the host (nullopt: nowhere,
  // e.g. the private /tmp, empty when an exec starts).
  auto host_of = [&c](const std::string& p) -> std::optional<fs::path> {
    std::string q = p.front() == '/' ? p : "/root/" + p;
    if (q.rfind("/bin/", 0) == 0) q = "/usr" + q;
    if (q.rfind("/sbin/", 0) == 0) q = "/usr" + q;
    if (q == "/usr/bin/virt-freezer") return freezer_program();
    if (q.rfind("/usr/", 0) == 0) return fs::path(q);
    if (q.rfind("/root/", 0) == 0) return c.dir / "root" / q.substr(6);
    return std::nullopt;
  };
  if (program.empty()) return false;
  if (program.find('/') == std::string::npos) {
    std::string path = container_path();
    for (size_t at = 0; at <= path.size();) {
      size_t colon = std::min(path.find(':', at), path.size());
      auto h = host_of(path.substr(at, colon - at) + "/" + program);
      if (h && executable(*h)) return true;
      at = colon + 1;
    }
    return false;
  }
  auto h = host_of(program);
  return h && executable(*h);
}

namespace {

// Builds the image's /usr/bin in `bin` (absent): a link per host program, and virt-freezer.
Status build_image_bin(const fs::path& bin) {
  std::error_code ec;
  fs::create_directories(bin, ec);
  if (ec) return Error(Errc::kIo, "cannot make " + bin.string() + ": " + ec.message());
  for (const auto& e : fs::directory_iterator("/usr/bin", ec)) {
    std::string name = e.path().filename().string();
    if (name == "virt-freezer") continue;
    fs::create_symlink(fs::path(kHostBin) / name, bin / name, ec);
    if (ec) return Error(Errc::kIo, "cannot link " + (bin / name).string() + ": " + ec.message());
  }
  fs::copy_file(freezer_program(), bin / "virt-freezer", fs::copy_options::overwrite_existing, ec);
  if (ec) return Error(Errc::kIo, "cannot install virt-freezer in " + bin.string() + ": " + ec.message());
  return ok();
}

// The image is the same for every cluster of this user while /usr/bin and the
// virt-freezer program stay as they are: it is built once (it costs hundreds of
// ms on a loaded machine) under /tmp/kvbackup-testcluster-image-<uid>/<key>,
// made whole in a private directory and renamed into place.
std::optional<fs::path> shared_image_bin() {
  std::error_code ec;
  fs::path prog = freezer_program();
  auto stamp = [&ec](const fs::path& p) {
    auto t = fs::last_write_time(p, ec);
    return std::to_string(t.time_since_epoch().count());
  };
  std::string key = prog.string() + "|" + stamp(prog) + "|" + stamp("/usr/bin");
  if (ec) return std::nullopt;
  fs::path root = fs::temp_directory_path() / ("kvbackup-testcluster-image-" + std::to_string(::geteuid()));
  ::mkdir(root.c_str(), 0700);
  struct stat st{};
  if (::lstat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0) {
    return std::nullopt;  // not ours alone: each cluster builds its own
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016zx", std::hash<std::string>{}(key));
  fs::path final_dir = root / hex;
  if (fs::exists(final_dir / "usr-bin" / "virt-freezer", ec)) return final_dir / "usr-bin";
  std::string tmpl = (root / "building-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return std::nullopt;
  if (!build_image_bin(fs::path(tmpl) / "usr-bin")) {
    fs::remove_all(tmpl, ec);
    return std::nullopt;
  }
  if (::rename(tmpl.c_str(), final_dir.c_str()) != 0) fs::remove_all(tmpl, ec);  // another built it first
  if (fs::exists(final_dir / "usr-bin" / "virt-freezer", ec)) return final_dir / "usr-bin";
  return std::nullopt;
}

}  // namespace

Status ExecSandbox::ensure_image() {
  if (!image_bin_.empty()) return ok();
  if (auto shared = shared_image_bin()) {
    image_bin_ = *shared;
    return ok();
  }
  fs::path bin = state_dir_ / "image" / "usr-bin";
  std::error_code ec;
  fs::remove_all(bin, ec);
  KVB_CHECK(build_image_bin(bin));
  image_bin_ = bin;
  return ok();
}

Result<std::vector<std::string>> ExecSandbox::argv(const SandboxContainer& c, const std::vector<std::string>& command,
                                                   const fs::path& freezer_socket) {
  if (auto why = unavailable()) return Error(Errc::kConfig, *why);
  KVB_CHECK(ensure_image());
  KVB_CHECK(ensure_container(c));
  std::vector<std::string> a = {kBwrap, "--unshare-all", "--die-with-parent", "--hostname", c.pod,
                                "--ro-bind", "/usr", "/usr",
                                "--ro-bind", "/usr/bin", kHostBin,
                                "--ro-bind", image_bin_.string(), "/usr/bin",
                                "--symlink", "usr/bin", "/bin",
                                "--symlink", "usr/sbin", "/sbin",
                                "--symlink", "usr/lib", "/lib",
                                "--symlink", "usr/lib64", "/lib64",
                                "--ro-bind", (c.dir / "etc").string(), "/etc",
                                "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
                                "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
                                "--proc", "/proc",
                                "--dev", "/dev",
                                "--tmpfs", "/tmp",
                                "--bind", (c.dir / "root").string(), "/root",
                                "--chdir", "/root"};
  if (!freezer_socket.empty()) {
    for (const char* s : {"--bind", freezer_socket.c_str(), kSandboxFreezerSocket}) a.emplace_back(s);
  }
  a.emplace_back("--");
  a.insert(a.end(), command.begin(), command.end());
  return a;
}

namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

// One virt-freezer call: its argv in, the answer out.
struct FreezerCall : std::enable_shared_from_this<FreezerCall> {
  stream_protocol::socket socket;
  FreezerEndpoint::Handler handler;
  std::string in, out;
  std::array<char, 4096> chunk{};
  FreezerCall(stream_protocol::socket s, FreezerEndpoint::Handler h) : socket(std::move(s)), handler(std::move(h)) {}

  void read() {
    socket.async_read_some(asio::buffer(chunk), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
      self->in.append(self->chunk.data(), n);
      if (!ec && self->in.size() < 65536) return self->read();
      if (ec != asio::error::eof) return;  // a broken or oversized call: dropped
      std::vector<std::string> args;
      for (size_t at = 0; at < self->in.size();) {
        size_t end = self->in.find('\0', at);
        if (end == std::string::npos) break;
        args.push_back(self->in.substr(at, end - at));
        at = end + 1;
      }
      self->handler(args, [self](std::string o, std::string e, int code) {
        put_u32(self->out, static_cast<uint32_t>(code));
        put_u32(self->out, static_cast<uint32_t>(o.size()));
        self->out += o;
        put_u32(self->out, static_cast<uint32_t>(e.size()));
        self->out += e;
        asio::async_write(self->socket, asio::buffer(self->out), [self](boost::system::error_code, size_t) {
          boost::system::error_code ignored;
          self->socket.close(ignored);
        });
      });
    });
  }
};

class Endpoint : public FreezerEndpoint, public std::enable_shared_from_this<Endpoint> {
 public:
  Endpoint(asio::io_context& io, fs::path path, Handler h) : acceptor_(io), path_(std::move(path)), handler_(std::move(h)) {}
  ~Endpoint() override { close(); }

  Status open() {
    boost::system::error_code ec;
    std::error_code fec;
    fs::remove(path_, fec);
    acceptor_.open(stream_protocol(), ec);
    if (!ec) acceptor_.bind(stream_protocol::endpoint(path_.string()), ec);
    if (!ec) acceptor_.listen(16, ec);
    if (ec) return Error(Errc::kIo, "cannot listen on " + path_.string() + ": " + ec.message());
    return ok();
  }
  void accept() {
    std::weak_ptr<Endpoint> weak = shared_from_this();
    acceptor_.async_accept([weak](boost::system::error_code ec, stream_protocol::socket s) {
      auto self = weak.lock();
      if (ec || !self) return;
      std::make_shared<FreezerCall>(std::move(s), self->handler_)->read();
      self->accept();
    });
  }
  void close() override {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::error_code fec;
    fs::remove(path_, fec);
  }

 private:
  stream_protocol::acceptor acceptor_;
  fs::path path_;
  Handler handler_;
  bool closed_ = false;
};

}  // namespace

Result<std::shared_ptr<FreezerEndpoint>> FreezerEndpoint::listen(EventLoop& loop, const fs::path& path, Handler handler) {
  auto e = std::make_shared<Endpoint>(*static_cast<asio::io_context*>(loop.native()), path, std::move(handler));
  KVB_CHECK(e->open());
  e->accept();
  return std::shared_ptr<FreezerEndpoint>(e);
}

}  // namespace kvb::testcluster
