// The options every WebSocket call of the client sets (exec, port-forward):
// the runtime's headers and credentials plus `protocols` on the upgrade
// request, a handshake bounded by the call's deadline, no idle timeout and no
// pings (the call's deadline and its closer end it), and messages up to
// 16 MiB. Beast in a detail header: included only by src/kube's .cpp files.
#pragma once

#include "kube/detail/runtime.h"

#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <string>

namespace kvb::kube::detail {

template <class WebSocket>
void configure_websocket(WebSocket& ws, const Runtime& rt, const AuthMaterial& auth, std::string protocols,
                         std::chrono::steady_clock::time_point deadline) {
  namespace websocket = boost::beast::websocket;
  ws.set_option(websocket::stream_base::decorator([&rt, &auth, protocols = std::move(protocols)](websocket::request_type& req) {
    rt.decorate(req, auth);
    req.set(boost::beast::http::field::sec_websocket_protocol, protocols);
  }));
  websocket::stream_base::timeout t{};
  t.handshake_timeout =
      std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now()) + std::chrono::seconds(1);
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  boost::beast::get_lowest_layer(ws).expires_never();
  ws.set_option(t);
  ws.read_message_max(16 << 20);
}

}  // namespace kvb::kube::detail
