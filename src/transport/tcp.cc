#include "tcp.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>

#include "vitalgate/core/unique_fd.h"

namespace vg {
namespace {

using boost::asio::ip::tcp;

// The tcp transport's options as the config spells them.
struct TcpConfig {
  std::string host;
  std::int64_t port = 0;
  std::int64_t connect_timeout_ms = 10000;
  // A dead peer sends no FIN: without bytes for a while, the connection is presumed dead.
  StreamConfig stream{.idle_reconnect_s = 30};
};

const OptionTable<TcpConfig>& Table() {
  static const OptionTable<TcpConfig> table = [] {
    OptionTable<TcpConfig> t;
    t.Add(&TcpConfig::host,
          {.name = "host", .help = "Host name or IP address of the converter.", .required = true});
    t.Add(&TcpConfig::port,
          {.name = "port", .help = "TCP port.", .required = true, .min = 1, .max = 65535});
    t.Add(&TcpConfig::connect_timeout_ms, {.name = "connect_timeout_ms",
                                           .help = "Give up a connection attempt after this.",
                                           .min = 100,
                                           .max = 600000});
    t.Include(&TcpConfig::stream, &StreamOptionTable);
    return t;
  }();
  return table;
}

}  // namespace

std::span<const OptionSpec> TcpTransport::Specs() { return Table().specs(); }

Status TcpTransport::Check(const nlohmann::json& options, std::string_view path) {
  const TcpConfig config = Table().Read(options);
  auto s = ToStreamOptions(config.stream);
  if (!s.ok()) return s.status().WithContext(path);
  if (config.host.empty()) return InvalidArgument(std::string(path) + ".host: must not be empty");
  return Status::Ok();
}

Result<std::unique_ptr<Transport>> TcpTransport::Make(const TransportContext& ctx,
                                                      const nlohmann::json& o) {
  const TcpConfig config = Table().Read(o);
  auto stream = ToStreamOptions(config.stream);
  if (!stream.ok()) return stream.status();
  return std::unique_ptr<Transport>(std::make_unique<TcpTransport>(
      ctx, config.host, static_cast<std::uint16_t>(config.port), config.connect_timeout_ms,
      *stream));
}

TcpTransport::TcpTransport(const TransportContext& ctx, std::string host, std::uint16_t port,
                           std::int64_t connect_timeout_ms, StreamOptions options)
    : StreamTransport(ctx, std::move(options)),
      host_(std::move(host)),
      port_(port),
      connect_timeout_ms_(connect_timeout_ms),
      resolver_(*ctx.io),
      socket_(*ctx.io),
      connect_timer_(*ctx.io) {}

TcpTransport::~TcpTransport() { Stop(); }

void TcpTransport::Open() {
  const std::uint64_t attempt = ++attempt_;
  std::weak_ptr<bool> alive_token = alive();
  connect_timer_.expires_after(std::chrono::milliseconds(connect_timeout_ms_));
  connect_timer_.async_wait([this, alive_token, attempt](const boost::system::error_code& ec) {
    if (ec || alive_token.expired() || stopped() || attempt != attempt_) return;
    ++attempt_;  // late callbacks of this attempt are ignored
    Failed("connection attempt timed out");
  });
  resolver_.async_resolve(
      host_, std::to_string(port_),
      [this, alive_token, attempt](const boost::system::error_code& ec,
                                   const tcp::resolver::results_type& results) {
        if (alive_token.expired() || stopped() || attempt != attempt_) return;
        if (ec) {
          ++attempt_;
          connect_timer_.cancel();
          Failed("cannot resolve " + host_ + ": " + ec.message());
          return;
        }
        ConnectTo(attempt, results, results.begin(), "no address");
      });
}

void TcpTransport::ConnectTo(std::uint64_t attempt, const tcp::resolver::results_type& endpoints,
                             tcp::resolver::results_type::const_iterator next,
                             const std::string& last_error) {
  if (next == endpoints.end()) {
    ++attempt_;
    connect_timer_.cancel();
    Failed("cannot connect: " + last_error);
    return;
  }
  const tcp::endpoint endpoint = next->endpoint();
  boost::system::error_code ec;
  socket_.close(ec);
  // Asio would create the socket without close-on-exec: exec children would inherit it.
  UniqueFd fd(::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       IPPROTO_TCP));
  if (!fd) {
    ConnectTo(attempt, endpoints, std::next(next), std::strerror(errno));
    return;
  }
  socket_.assign(endpoint.protocol(), fd.get(), ec);
  if (ec) {
    ConnectTo(attempt, endpoints, std::next(next), ec.message());
    return;
  }
  (void)fd.release();  // socket_ owns it now
  std::weak_ptr<bool> alive_token = alive();
  socket_.async_connect(endpoint, [this, alive_token, attempt, endpoints,
                                   next](const boost::system::error_code& cec) {
    if (alive_token.expired() || stopped() || attempt != attempt_) return;
    if (cec) {
      ConnectTo(attempt, endpoints, std::next(next), cec.message());
      return;
    }
    connect_timer_.cancel();
    boost::system::error_code ignored;
    socket_.set_option(boost::asio::socket_base::keep_alive(true), ignored);
    socket_.set_option(tcp::no_delay(true), ignored);
    Opened();
  });
}

void TcpTransport::CloseStream() {
  boost::system::error_code ignored;
  resolver_.cancel();
  connect_timer_.cancel();
  socket_.close(ignored);
}

}  // namespace vg
