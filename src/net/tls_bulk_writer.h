// TlsBulkWriter: the body of a large streamed request (an image POSTed to
// CDI's upload proxy, HttpTransport::exchange_streamed) written through an
// established TLS connection by OpenSSL straight onto the socket, around
// Asio's TLS engine.
//
// Why: Asio's engine moves TLS output through a 17 KiB BIO pair: every
// 16 KiB record is one trip through the io_context (a timer armed, a
// sendmsg): 65,536 of each per GiB, the largest part of the sender's kernel
// time on a loopback upload (docs/restore.md "Where the time goes"). Here
// OpenSSL writes its records into a 256 KiB buffer BIO on the socket: one
// send() per ~256 KiB.
//
// How: while a writer lives, the SSL object's write BIO is that buffer BIO;
// Asio's BIO (its pair's inner end, which is also the read BIO) is put back
// when it ends, so the response and anything later go through Asio as
// before. Only writes are redirected: what the server sends meanwhile (an
// early refusal, TLS 1.3 session tickets) waits in the socket for Asio.
//
// Invariants: made only when Asio has no output pending (no write in
// flight: the request header's write completed); flush() before the
// response is read; after an error the connection is not written again
// (the caller reads a possible answer, then closes it). The socket may be
// non-blocking (Asio's): a step that would block waits in poll() for at
// most `stall` (no progress for that long: kTimeout).
// Threads: one thread, the connection's owner.
#pragma once

#include "common/error.h"

#include <chrono>
#include <string_view>

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace kvb::net {

class TlsBulkWriter {
 public:
  TlsBulkWriter(SSL* ssl, int fd, std::chrono::milliseconds stall);
  ~TlsBulkWriter();  // puts Asio's write BIO back (unflushed bytes are dropped)
  TlsBulkWriter(const TlsBulkWriter&) = delete;
  TlsBulkWriter& operator=(const TlsBulkWriter&) = delete;

  // kTransport (the connection broke: the message says how) or kTimeout.
  Status write(std::string_view data);
  Status flush();

 private:
  Status wait_writable();
  Status failed(int ret, const char* what);

  SSL* ssl_;
  int fd_;
  std::chrono::milliseconds stall_;
  BIO* asio_wbio_ = nullptr;
  BIO* buffer_ = nullptr;
};

}  // namespace kvb::net
