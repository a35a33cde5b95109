// HttpServer: GET /healthz (JSON) and GET /metrics (Prometheus text format 0.0.4) on the I/O
// thread, with Boost.Beast. Read-only views of GatewayStats; every request is bounded (8 KiB
// header, 5 s to complete) and every connection closes after one response.
// Thread-safety: I/O thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "vitalgate/core/clock.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/core/status.h"

namespace vg {

struct HealthInfo {
  std::string gateway_id;
  std::string site;
  std::string version;
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const GatewayStats& stats, const Clock& clock,
             HealthInfo info);
  ~HttpServer();
  // Parses "host:port" and starts listening.
  Status Listen(const std::string& address);
  void Stop();

  // The bodies, exposed for tests.
  std::string HealthJson(int* http_status) const;
  std::string MetricsText() const;

 private:
  void Accept();

  boost::asio::io_context& io_;
  const GatewayStats& stats_;
  const Clock& clock_;
  HealthInfo info_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
