#include "net/tls_bulk_writer.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvb::net {

namespace {
constexpr int kBufferBytes = 256 << 10;
}

TlsBulkWriter::TlsBulkWriter(SSL* ssl, int fd, std::chrono::milliseconds stall) : ssl_(ssl), fd_(fd), stall_(stall) {
  asio_wbio_ = SSL_get_wbio(ssl_);
  BIO_up_ref(asio_wbio_);  // SSL_set0_wbio drops the write slot's reference; ours keeps it for the way back
  BIO* socket = BIO_new_socket(fd_, BIO_NOCLOSE);
  buffer_ = BIO_new(BIO_f_buffer());
  if (socket && buffer_ && BIO_set_write_buffer_size(buffer_, kBufferBytes) > 0) {
    BIO_push(buffer_, socket);
    SSL_set0_wbio(ssl_, buffer_);
    return;
  }
  // Out of memory: write through Asio's BIO, which nobody drains: write() fails.
  BIO_free(socket);
  BIO_free(buffer_);
  buffer_ = nullptr;
}

TlsBulkWriter::~TlsBulkWriter() {
  if (buffer_) SSL_set0_wbio(ssl_, asio_wbio_);  // frees the buffer and socket BIOs (the socket stays open)
  else BIO_free(asio_wbio_);
}

Status TlsBulkWriter::write(std::string_view data) {
  if (!buffer_) return Error(Errc::kTransport, "no memory for the TLS write buffer");
  while (!data.empty()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    KVB_CHECK(failed(n, "sending"));
  }
  return ok();
}

Status TlsBulkWriter::flush() {
  if (!buffer_) return Error(Errc::kTransport, "no memory for the TLS write buffer");
  for (;;) {
    errno = 0;
    if (BIO_flush(buffer_) > 0) return ok();
    if (!BIO_should_retry(buffer_)) {
      return Error(Errc::kTransport, std::string("sending: ") + (errno ? std::strerror(errno) : "the connection closed"));
    }
    KVB_CHECK(wait_writable());
  }
}

// SSL_write returned ret <= 0: wait and go on, or say why not.
Status TlsBulkWriter::failed(int ret, const char* what) {
  int saved_errno = errno;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_WRITE:
      return wait_writable();
    case SSL_ERROR_WANT_READ:  // TLS 1.2 renegotiation: the read side is Asio's
      return Error(Errc::kTransport, std::string(what) + ": the server asked for a TLS renegotiation mid-body");
    case SSL_ERROR_SYSCALL:
      return Error(Errc::kTransport, std::string(what) + ": " + (saved_errno ? std::strerror(saved_errno) : "the connection closed"));
    default: {
      char buf[256];
      ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
      return Error(Errc::kTransport, std::string(what) + ": TLS: " + buf);
    }
  }
}

Status TlsBulkWriter::wait_writable() {
  pollfd p{fd_, POLLOUT, 0};
  for (;;) {
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(stall_.count(), INT32_MAX)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error(Errc::kTransport, std::string("poll: ") + std::strerror(errno));
    if (r == 0) return Error(Errc::kTimeout, "sending stalled for " + std::to_string(stall_.count()) + " ms");
    return ok();  // writable, or an error the next write reports
  }
}

}  // namespace kvb::net
