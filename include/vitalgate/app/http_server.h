// HttpServer: the local endpoints on `http.listen`, with Boost.Beast on the I/O thread:
//   GET /             the status page (HTML, no script, refreshes itself)
//   GET /api/status   the same as JSON (docs/status.md)
//   GET /healthz      the health verdict (JSON; 200 or 503 with the reasons)
//   GET /metrics      Prometheus text format 0.0.4
// Every view renders one StatusSnapshot per request, asked of the StatusSource the daemon
// passes in (without one, a snapshot is made from GatewayStats alone).
//
// Access: on a loopback address without `http.tls`, requests need no credentials but their
// Host header must name the listen address or localhost (421 otherwise), so that neither DNS
// rebinding nor a local reverse proxy can borrow the loopback exemption. With `http.tls`
// (required beyond loopback) every request authenticates with a client certificate signed by
// `http.tls.ca_file` or with HTTP Basic against `http.users_file`; failed logins are audited
// and limited to 5 per minute per client address (429 after that).
//
// Robustness: only GET and HEAD (405 with Allow), a request's header at most 8 KiB (431), no
// request body (413), anything malformed 400, each answered before the connection closes;
// 5 s to send a request; one request per connection. At most `http.max_connections`
// connections (and never more than a quarter of the open-file limit) are served at once: a
// new one replaces the oldest that has not yet sent its request. Accept errors (EMFILE,
// ENFILE, ENOBUFS...) back off from 50 ms doubling to 1 s and are logged at most every 10 s,
// so the accept loop never spins.
//
// Thread-safety: construct, Listen, Stop and destroy on the I/O thread (or while it is not
// running). Password checks run on a worker thread of their own, joined by the destructor.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "vitalgate/app/status.h"
#include "vitalgate/app/status_views.h"
#include "vitalgate/config/config.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/core/status.h"

namespace boost::asio {
class thread_pool;
}

namespace vg {

// Called on the I/O thread for audit events of the server: kind "login", the user name (or a
// client certificate's subject) as actor, and a JSON object as detail, e.g.
// {"result":"failed","address":"192.0.2.7","reason":"wrong password"}.
using HttpAuditFn = std::function<void(std::string kind, std::string actor, std::string detail)>;

class HttpServer {
 public:
  // `status` may be null (then the views are made from `stats`); if given it must outlive
  // the server. `on_audit` may be empty (then login events are only logged).
  HttpServer(boost::asio::io_context& io, const GatewayStats& stats, const Clock& clock,
             HealthInfo info, const StatusSource* status = nullptr, HttpAuditFn on_audit = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts listening as `http` says: plain HTTP on loopback, HTTPS with authentication
  // anywhere. Errors name the config key (http.listen, http.tls.cert_file, http.users_file).
  Status Listen(const config::HttpConfig& http);
  // Plain HTTP on "host:port"; the host must be a loopback address.
  Status Listen(const std::string& address);
  void Stop();

  // The port actually bound (useful after listening on port 0).
  unsigned short port() const;
  // Failed accept calls since Listen.
  std::uint64_t accept_failures() const;
  // Connections open right now.
  std::size_t connections() const;
  // The connection limit in force (http.max_connections, capped by the open-file limit).
  std::size_t max_connections() const;
  // The time a client has to send its request's header, and to take the answer (5 s). Set
  // before Listen; tests lengthen it to show what does not depend on it.
  void set_request_timeout(std::chrono::milliseconds timeout);

  // The bodies, exposed for tests.
  std::string HealthJson(int* http_status) const;
  std::string MetricsText() const;

  class Core;  // the state shared with the connections (http_server.cc)

 private:
  std::shared_ptr<Core> core_;
  std::unique_ptr<boost::asio::thread_pool> verifier_;
};

// What Listen checks of `http.tls` and `http.users_file` before it binds: the certificate and
// key load and match, the client CA loads, every line of the users file is valid. For
// `vitalgate check`.
Status CheckHttpAccess(const config::HttpConfig& http);

}  // namespace vg
