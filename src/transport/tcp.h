// tcp transport: a client connection to a serial-over-IP converter (e.g. a Moxa NPort in TCP
// server mode) or a monitor's network export. Resolves and connects asynchronously, enables TCP
// keep-alive, and reconnects with backoff when the converter reboots or the connection drops;
// `idle_reconnect_s` catches connections that died without a FIN.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "stream_transport.h"

namespace vg {

class TcpTransport final : public StreamTransport<boost::asio::ip::tcp::socket> {
 public:
  TcpTransport(const TransportContext& ctx, std::string host, std::uint16_t port,
               std::int64_t connect_timeout_ms, StreamOptions options);
  ~TcpTransport() override;

  static std::span<const OptionSpec> Specs();
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx, const nlohmann::json& o);
  static Status Check(const nlohmann::json& options, std::string_view path);

 protected:
  void Open() override;
  void CloseStream() override;
  boost::asio::ip::tcp::socket* stream() override { return &socket_; }
  std::string Describe() const override { return host_ + ":" + std::to_string(port_); }

 private:
  // Tries `next` and, when it fails, the endpoints after it; the last error when none connects.
  void ConnectTo(std::uint64_t attempt, const boost::asio::ip::tcp::resolver::results_type& endpoints,
                 boost::asio::ip::tcp::resolver::results_type::const_iterator next,
                 const std::string& last_error);

  std::string host_;
  std::uint16_t port_;
  std::int64_t connect_timeout_ms_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer connect_timer_;
  std::uint64_t attempt_ = 0;  // identifies the current attempt in late callbacks
};

}  // namespace vg
