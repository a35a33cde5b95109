#include "serial.h"

#include <fcntl.h>
#include <termios.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "vitalgate/core/unique_fd.h"

namespace vg {
namespace {

namespace asio = boost::asio;

constexpr std::string_view kParity[] = {"none", "odd", "even"};
constexpr std::string_view kStopBits[] = {"1", "1.5", "2"};
constexpr std::string_view kFlow[] = {"none", "software", "hardware"};

constexpr OptionSpec kSpecs[] = {
    {"path", OptionType::kString, "", "Device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...",
     true},
    {"baud", OptionType::kInteger, "9600", "Baud rate.", false, 50, 4000000},
    {"data_bits", OptionType::kInteger, "8", "Data bits: 5 to 8.", false, 5, 8},
    {"parity", OptionType::kString, "\"none\"", "none, odd or even.", false, -1e300, 1e300, kParity},
    {"stop_bits", OptionType::kString, "\"1\"", "1, 1.5 or 2.", false, -1e300, 1e300, kStopBits},
    {"flow_control", OptionType::kString, "\"none\"", "none, software (XON/XOFF) or hardware (RTS/CTS).",
     false, -1e300, 1e300, kFlow},
    {"reconnect_min_ms", OptionType::kInteger, "500", "First reopen delay after a failure.", false,
     10, 3600000},
    {"reconnect_max_ms", OptionType::kInteger, "30000", "Cap of the exponential reopen delay.",
     false, 10, 3600000},
    {"idle_reconnect_s", OptionType::kNumber, "0",
     "Reopen the port after this long without a byte; 0 never.", false, 0, 86400},
    {"init_hex", OptionType::kString, "\"\"",
     "Bytes (hex) sent after every open, for devices that stream only on request.", false},
    {"keepalive_hex", OptionType::kString, "\"\"", "Bytes (hex) sent every keepalive_ms.", false},
    {"keepalive_ms", OptionType::kInteger, "0", "Keep-alive period; 0 none.", false, 0, 3600000},
};

}  // namespace

std::span<const OptionSpec> SerialTransport::Specs() { return kSpecs; }

Status SerialTransport::Check(const nlohmann::json& options, std::string_view path) {
  auto s = ParseStreamOptions(options);
  if (!s.ok()) return s.status().WithContext(path);
  // The port itself is not required to exist at check time: adapters come and go, and the
  // daemon waits for them.
  return Status::Ok();
}

Result<std::unique_ptr<Transport>> SerialTransport::Make(const TransportContext& ctx,
                                                         const nlohmann::json& o) {
  auto stream = ParseStreamOptions(o);
  if (!stream.ok()) return stream.status();
  LineSettings line;
  line.path = o.at("path").get<std::string>();
  line.baud = o.at("baud").get<unsigned>();
  line.data_bits = o.at("data_bits").get<unsigned>();
  const std::string parity = o.at("parity").get<std::string>();
  line.parity = parity == "odd"    ? asio::serial_port::parity::odd
                : parity == "even" ? asio::serial_port::parity::even
                                   : asio::serial_port::parity::none;
  const std::string stop = o.at("stop_bits").get<std::string>();
  line.stop_bits = stop == "2"     ? asio::serial_port::stop_bits::two
                   : stop == "1.5" ? asio::serial_port::stop_bits::onepointfive
                                   : asio::serial_port::stop_bits::one;
  const std::string flow = o.at("flow_control").get<std::string>();
  line.flow = flow == "software"   ? asio::serial_port::flow_control::software
              : flow == "hardware" ? asio::serial_port::flow_control::hardware
                                   : asio::serial_port::flow_control::none;
  return std::unique_ptr<Transport>(std::make_unique<SerialTransport>(ctx, line, *stream));
}

SerialTransport::SerialTransport(const TransportContext& ctx, LineSettings line,
                                 StreamOptions options)
    : StreamTransport(ctx, std::move(options)), line_(std::move(line)), port_(*ctx.io) {}

SerialTransport::~SerialTransport() { Stop(); }

namespace {

// Opens the port the way Asio's serial_port::open does (non-blocking, not the controlling
// terminal, raw: no echo, no line editing, no translation of bytes, no signals from the line),
// but close-on-exec, so exec children never inherit it.
Result<UniqueFd> OpenRawPort(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return Unavailable(std::strerror(errno));
  termios t{};
  if (::tcgetattr(fd.get(), &t) != 0) return Unavailable(std::strerror(errno));
  t.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
                                      IXON);
  t.c_iflag |= IGNPAR;
  t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
  t.c_cflag |= CS8 | CREAD | CLOCAL;
  if (::tcsetattr(fd.get(), TCSANOW, &t) != 0) return Unavailable(std::strerror(errno));
  return fd;
}

}  // namespace

void SerialTransport::Open() {
  auto fd = OpenRawPort(line_.path);
  if (!fd.ok()) {
    Failed("cannot open: " + fd.status().message());
    return;
  }
  boost::system::error_code ec;
  port_.assign(fd->get(), ec);
  if (!ec) (void)fd->release();  // port_ owns it now
  auto set = [&](const auto& option) {
    if (!ec) port_.set_option(option, ec);
  };
  set(asio::serial_port::baud_rate(line_.baud));
  set(asio::serial_port::character_size(line_.data_bits));
  set(asio::serial_port::parity(line_.parity));
  set(asio::serial_port::stop_bits(line_.stop_bits));
  set(asio::serial_port::flow_control(line_.flow));
  if (ec) {
    Failed("cannot open: " + ec.message());
    return;
  }
  Opened();
}

void SerialTransport::CloseStream() {
  boost::system::error_code ignored;
  port_.close(ignored);
}

}  // namespace vg
