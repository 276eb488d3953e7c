// CredentialProvider: turns a RestConfig's user entry into what goes on the
// wire (an Authorization header and/or a TLS client certificate), keeping it
// fresh.
//
// Static tokens and basic auth never change. A token file is re-read when its
// modification time or size changes (projected service-account tokens rotate).
// An exec credential plugin (client.authentication.k8s.io v1/v1beta1) is run on
// first use and again when its expirationTimestamp has passed or after the
// server answered 401 (invalidate()). Thread-safe.
//
// Invariant: no method logs or returns a credential inside an error message;
// plugin stderr shown in errors is redacted against the credentials it produced.
#pragma once

#include "common/error.h"
#include "common/secret.h"
#include "kube/config.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

namespace kvb::kube {

struct AuthMaterial {
  std::optional<Secret> authorization;  // full header value: "Bearer …" or "Basic …"
  std::string client_certificate_pem;
  Secret client_key_pem;
  uint64_t certificate_generation = 0;  // changes whenever the client certificate changes
};

class CredentialProvider {
 public:
  explicit CredentialProvider(RestConfig config);

  Result<AuthMaterial> get();
  // The material when producing it needs no plugin run (at most a stat of the
  // token file); nullopt when get() would have to run the exec plugin, is
  // running it on another thread, or fails. Never blocks on a plugin run.
  std::optional<AuthMaterial> cached_if_fresh();
  // Forget cached credentials so that the next get() refreshes them (after a 401).
  void invalidate();
  // True when invalidate() can produce different credentials (plugin or token file).
  bool refreshable() const;

 private:
  Result<AuthMaterial> run_exec_plugin();
  Status reread_token_file();

  const RestConfig config_;
  std::mutex mu_;
  AuthMaterial material_;
  bool have_material_ = false;
  std::optional<std::chrono::system_clock::time_point> expires_;
  int64_t token_file_mtime_ns_ = -1;
  int64_t token_file_size_ = -1;
};

}  // namespace kvb::kube
