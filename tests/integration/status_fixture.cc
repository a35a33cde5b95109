// status_fixture: the real HttpServer serving a made-up ward (ward_snapshot.h), for the browser
// and access tests (test_status_page.py).
//
//   status_fixture [--listen ADDR] [--hostile] [--tls-cert F --tls-key F [--tls-ca F]]
//                  [--users-file F] [--max-seconds N]
//
// Prints "port N" once listening, then one line "audit <kind> <actor> <detail>" per audit event
// of the server, and exits on SIGTERM/SIGINT or after --max-seconds (default 600).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

#include "vitalgate/app/http_server.h"
#include "vitalgate/core/log.h"
#include "ward_snapshot.h"

namespace {

// The ward's wall time, standing still; real monotonic time (login rate limits run on it).
class WardClock final : public vg::Clock {
 public:
  std::int64_t WallMs() const override { return vg::testing::kWardNowMs; }
  std::int64_t MonotonicNs() const override { return vg::SystemClock::Instance().MonotonicNs(); }
};

}  // namespace

int main(int argc, char** argv) {
  vg::config::HttpConfig cfg;
  cfg.listen = "127.0.0.1:0";
  bool hostile = false;
  long max_seconds = 600;
  vg::config::HttpTlsConfig tls;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "status_fixture: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--listen") {
      cfg.listen = value();
    } else if (a == "--hostile") {
      hostile = true;
    } else if (a == "--tls-cert") {
      tls.cert_file = value();
    } else if (a == "--tls-key") {
      tls.key_file = value();
    } else if (a == "--tls-ca") {
      tls.ca_file = value();
    } else if (a == "--users-file") {
      cfg.users_file = value();
    } else if (a == "--max-seconds") {
      max_seconds = std::stol(value());
    } else {
      std::fprintf(stderr, "status_fixture: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (!tls.cert_file.empty()) cfg.tls = tls;
  vg::InitLogging("info");

  boost::asio::io_context io;
  vg::GatewayStats stats(1);
  stats.devices[0]->id = "ox-1";
  stats.devices[0]->transport = "serial";
  stats.devices[0]->readings = 11'520;
  stats.devices[0]->decode_errors = 2;
  WardClock clock;
  vg::testing::FixedStatusSource source(vg::testing::MakeWardSnapshot(hostile));
  vg::HttpServer server(io, stats, clock, vg::HealthInfo{"ward7-gw1", "north wing", "0.1.0"}, &source,
                        [](std::string kind, std::string actor, std::string detail) {
                          std::printf("audit %s %s %s\n", kind.c_str(), actor.c_str(), detail.c_str());
                          std::fflush(stdout);
                        });
  const vg::Status s = server.Listen(cfg);
  if (!s.ok()) {
    std::fprintf(stderr, "status_fixture: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("port %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  boost::asio::steady_timer limit(io, std::chrono::seconds(max_seconds));
  limit.async_wait([&](const boost::system::error_code& ec) {
    if (!ec) io.stop();
  });
  io.run();
  server.Stop();
  return 0;
}
