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

// The serial transport's options as the config spells them.
struct SerialConfig {
  std::string path;
  std::int64_t baud = 9600;
  std::int64_t data_bits = 8;
  std::string parity = "none";
  std::string stop_bits = "1";
  std::string flow_control = "none";
  StreamConfig stream;
};

const OptionTable<SerialConfig>& Table() {
  static const OptionTable<SerialConfig> table = [] {
    OptionTable<SerialConfig> t;
    t.Add(&SerialConfig::path,
          {.name = "path",
           .help = "Device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...",
           .required = true});
    t.Add(&SerialConfig::baud, {.name = "baud", .help = "Baud rate.", .min = 50, .max = 4000000});
    t.Add(&SerialConfig::data_bits,
          {.name = "data_bits", .help = "Data bits: 5 to 8.", .min = 5, .max = 8});
    t.Add(&SerialConfig::parity,
          {.name = "parity", .help = "none, odd or even.", .choices = kParity});
    t.Add(&SerialConfig::stop_bits,
          {.name = "stop_bits", .help = "1, 1.5 or 2.", .choices = kStopBits});
    t.Add(&SerialConfig::flow_control,
          {.name = "flow_control",
           .help = "none, software (XON/XOFF) or hardware (RTS/CTS).",
           .choices = kFlow});
    t.Include(&SerialConfig::stream, &StreamOptionTable);
    return t;
  }();
  return table;
}

}  // namespace

std::span<const OptionSpec> SerialTransport::Specs() { return Table().specs(); }

Status SerialTransport::Check(const nlohmann::json& options, std::string_view path) {
  auto s = ToStreamOptions(Table().Read(options).stream);
  if (!s.ok()) return s.status().WithContext(path);
  // The port itself is not required to exist at check time: adapters come and go, and the
  // daemon waits for them.
  return Status::Ok();
}

Result<std::unique_ptr<Transport>> SerialTransport::Make(const TransportContext& ctx,
                                                         const nlohmann::json& o) {
  const SerialConfig config = Table().Read(o);
  auto stream = ToStreamOptions(config.stream);
  if (!stream.ok()) return stream.status();
  LineSettings line;
  line.path = config.path;
  line.baud = static_cast<unsigned>(config.baud);
  line.data_bits = static_cast<unsigned>(config.data_bits);
  line.parity = config.parity == "odd"    ? asio::serial_port::parity::odd
                : config.parity == "even" ? asio::serial_port::parity::even
                                          : asio::serial_port::parity::none;
  line.stop_bits = config.stop_bits == "2"     ? asio::serial_port::stop_bits::two
                   : config.stop_bits == "1.5" ? asio::serial_port::stop_bits::onepointfive
                                               : asio::serial_port::stop_bits::one;
  line.flow = config.flow_control == "software"   ? asio::serial_port::flow_control::software
              : config.flow_control == "hardware" ? asio::serial_port::flow_control::hardware
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
