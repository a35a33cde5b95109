// serial transport: an RS-232 or USB-serial device (Boost.Asio serial_port). Opens the port
// non-blocking with the configured line settings, reads whatever arrives, and when the adapter
// is unplugged or the port fails, reports the link down and reopens it with backoff until it is
// back (a USB adapter reappears under the same udev path, e.g. /dev/serial/by-id/...).
#pragma once

#include <boost/asio/serial_port.hpp>

#include "stream_transport.h"

namespace vg {

class SerialTransport final : public StreamTransport<boost::asio::serial_port> {
 public:
  // The line as Make() sets it from the config (whose defaults are in serial.cc).
  struct LineSettings {
    std::string path;
    unsigned baud = 0;
    unsigned data_bits = 0;
    boost::asio::serial_port::parity::type parity{};
    boost::asio::serial_port::stop_bits::type stop_bits{};
    boost::asio::serial_port::flow_control::type flow{};
  };
  SerialTransport(const TransportContext& ctx, LineSettings line, StreamOptions options);
  ~SerialTransport() override;

  static std::span<const OptionSpec> Specs();
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx, const nlohmann::json& o);
  static Status Check(const nlohmann::json& options, std::string_view path);

 protected:
  void Open() override;
  void CloseStream() override;
  boost::asio::serial_port* stream() override { return &port_; }
  std::string Describe() const override { return line_.path; }

 private:
  LineSettings line_;
  boost::asio::serial_port port_;
};

}  // namespace vg
