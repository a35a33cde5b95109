#include "vitalgate/app/http_server.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "vitalgate/core/json_text.h"

namespace vg {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// One request, one response, then close. Owns itself through shared_ptr in its handlers.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServer& server)
      : stream_(std::move(socket)), server_(server) {}

  void Run() {
    parser_.header_limit(8192);
    parser_.body_limit(0);
    stream_.expires_after(std::chrono::seconds(5));
    auto self = shared_from_this();
    http::async_read(stream_, buffer_, parser_,
                     [self](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return;  // timeout, reset or malformed: nothing to answer
    const auto& req = parser_.get();
    response_.version(req.version());
    response_.keep_alive(false);
    response_.set(http::field::server, "vitalgate");
    const std::string target(req.target());
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      Respond(http::status::method_not_allowed, "text/plain", "only GET\n");
    } else if (target == "/healthz") {
      int status = 200;
      std::string body = server_.HealthJson(&status);
      Respond(static_cast<http::status>(status), "application/json", std::move(body));
    } else if (target == "/metrics") {
      Respond(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", server_.MetricsText());
    } else {
      Respond(http::status::not_found, "text/plain", "not found; try /healthz or /metrics\n");
    }
  }

  void Respond(http::status status, const char* type, std::string body) {
    response_.result(status);
    response_.set(http::field::content_type, type);
    response_.body() = std::move(body);
    response_.prepare_payload();
    auto self = shared_from_this();
    http::async_write(stream_, response_, [self](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{8192};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
  const HttpServer& server_;
};

void Metric(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void Sample(std::string& out, const char* name, std::uint64_t value, const std::string& labels = "") {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  AppendUint(out, value);
  out += '\n';
}

std::string Label(const char* key, const std::string& value) {
  std::string s = key;
  s += '=';
  AppendJsonString(s, value);  // Prometheus label values use the same escapes
  return s;
}

}  // namespace

HttpServer::HttpServer(boost::asio::io_context& io, const GatewayStats& stats, const Clock& clock,
                       HealthInfo info)
    : io_(io), stats_(stats), clock_(clock), info_(std::move(info)), acceptor_(io) {}

HttpServer::~HttpServer() {
  *alive_ = false;
  Stop();
}

Status HttpServer::Listen(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("http.listen: expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (const std::exception&) {
    return InvalidArgument("http.listen: bad port in \"" + address + "\"");
  }
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(host, ec);
  if (ec || port <= 0 || port > 65535) {
    return InvalidArgument("http.listen: \"" + address + "\" is not an IP address and port");
  }
  const tcp::endpoint ep(ip, static_cast<unsigned short>(port));
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) return Unavailable("http.listen: " + address + ": " + ec.message());
  Accept();
  return Status::Ok();
}

void HttpServer::Stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void HttpServer::Accept() {
  std::weak_ptr<bool> alive = alive_;
  acceptor_.async_accept([this, alive](boost::system::error_code ec, tcp::socket socket) {
    if (alive.expired() || !acceptor_.is_open()) return;
    if (!ec) std::make_shared<Session>(std::move(socket), *this)->Run();
    Accept();
  });
}

std::string HttpServer::HealthJson(int* http_status) const {
  const std::int64_t now = clock_.WallMs();
  const bool broker = stats_.broker_connected.load();
  const bool storage = stats_.store_healthy.load();
  const std::int64_t oldest = stats_.oldest_unacked_rx_ms.load();
  std::string s = "{\"status\":";
  s += broker && storage ? "\"ok\"" : "\"degraded\"";
  s += ",\"version\":";
  AppendJsonString(s, info_.version);
  s += ",\"gateway\":";
  AppendJsonString(s, info_.gateway_id);
  s += ",\"site\":";
  AppendJsonString(s, info_.site);
  s += ",\"broker\":{\"connected\":";
  s += broker ? "true" : "false";
  if (!broker) {
    s += ",\"error\":";
    AppendJsonString(s, stats_.broker_error.Get());
  }
  s += "},\"storage\":{\"healthy\":";
  s += storage ? "true" : "false";
  s += "},\"backlog\":{\"readings\":";
  AppendUint(s, stats_.backlog_readings.load());
  s += ",\"alerts\":";
  AppendUint(s, stats_.backlog_alerts.load());
  s += ",\"bytes\":";
  AppendUint(s, stats_.backlog_bytes.load());
  s += ",\"oldest_age_s\":";
  AppendJsonNumber(s, oldest > 0 ? static_cast<double>(now - oldest) / 1000.0 : 0.0);
  s += "},\"devices\":[";
  for (std::size_t i = 0; i < stats_.devices.size(); ++i) {
    const DeviceStats& d = *stats_.devices[i];
    if (i > 0) s += ',';
    s += "{\"id\":";
    AppendJsonString(s, d.id);
    s += ",\"transport\":";
    AppendJsonString(s, d.transport);
    s += ",\"link\":";
    s += d.link_up.load() ? "\"up\"" : "\"down\"";
    s += ",\"readings\":";
    AppendUint(s, d.readings.load());
    s += ",\"invalid\":";
    AppendUint(s, d.invalid.load());
    s += ",\"dropped\":";
    AppendUint(s, d.dropped.load());
    s += ",\"decode_errors\":";
    AppendUint(s, d.decode_errors.load());
    const std::int64_t last = d.last_reading_ms.load();
    s += ",\"last_reading_age_s\":";
    if (last > 0) {
      AppendJsonNumber(s, static_cast<double>(now - last) / 1000.0);
    } else {
      s += "null";
    }
    s += '}';
  }
  s += "]}\n";
  *http_status = broker && storage ? 200 : 503;
  return s;
}

std::string HttpServer::MetricsText() const {
  std::string out;
  out.reserve(4096);
  auto per_device = [&](const char* name, const char* help, auto getter) {
    Metric(out, name, "counter", help);
    for (const auto& d : stats_.devices) Sample(out, name, getter(*d), Label("device", d->id));
  };
  per_device("vitalgate_readings_received_total", "Readings decoded and accepted per device.",
             [](const DeviceStats& d) { return d.readings.load(); });
  per_device("vitalgate_readings_invalid_total",
             "Implausible or wrongly typed values per device (never forwarded or alarmed on).",
             [](const DeviceStats& d) { return d.invalid.load(); });
  per_device("vitalgate_readings_dropped_total", "Readings lost to a full engine queue per device.",
             [](const DeviceStats& d) { return d.dropped.load(); });
  per_device("vitalgate_decode_errors_total", "Undecodable frames or lines per device.",
             [](const DeviceStats& d) { return d.decode_errors.load(); });
  Metric(out, "vitalgate_device_link_up", "gauge", "1 while the device's link is up.");
  for (const auto& d : stats_.devices) {
    Sample(out, "vitalgate_device_link_up", d->link_up.load() ? 1 : 0, Label("device", d->id));
  }
  Metric(out, "vitalgate_readings_accepted_total", "counter", "Readings accepted by the engine.");
  Sample(out, "vitalgate_readings_accepted_total", stats_.readings_accepted.load());
  Metric(out, "vitalgate_readings_committed_total", "counter", "Readings committed to the outbox.");
  Sample(out, "vitalgate_readings_committed_total", stats_.readings_committed.load());
  Metric(out, "vitalgate_readings_delivered_total", "counter",
         "Readings acknowledged by the broker (out).");
  Sample(out, "vitalgate_readings_delivered_total", stats_.readings_delivered.load());
  Metric(out, "vitalgate_alerts_total", "counter", "Alert events raised by the engine.");
  Sample(out, "vitalgate_alerts_total", stats_.alerts_raised.load());
  Metric(out, "vitalgate_alerts_delivered_total", "counter", "Alert events acknowledged by the broker.");
  Sample(out, "vitalgate_alerts_delivered_total", stats_.alerts_delivered.load());
  Metric(out, "vitalgate_backlog_rows", "gauge", "Rows in the outbox waiting for delivery.");
  Sample(out, "vitalgate_backlog_rows", stats_.backlog_readings.load(), "kind=\"readings\"");
  Sample(out, "vitalgate_backlog_rows", stats_.backlog_alerts.load(), "kind=\"alerts\"");
  Metric(out, "vitalgate_backlog_bytes", "gauge", "Size of the outbox database and its WAL.");
  Sample(out, "vitalgate_backlog_bytes", stats_.backlog_bytes.load());
  Metric(out, "vitalgate_oldest_undelivered_reading_age_seconds", "gauge",
         "Age of the oldest reading not yet acknowledged by the broker.");
  const std::int64_t oldest = stats_.oldest_unacked_rx_ms.load();
  out += "vitalgate_oldest_undelivered_reading_age_seconds ";
  AppendJsonNumber(out, oldest > 0 ? static_cast<double>(clock_.WallMs() - oldest) / 1000.0 : 0.0);
  out += '\n';
  Metric(out, "vitalgate_readings_evicted_total", "counter",
         "Undelivered readings dropped to keep the outbox within storage.max_bytes.");
  Sample(out, "vitalgate_readings_evicted_total", stats_.readings_evicted.load());
  Metric(out, "vitalgate_store_errors_total", "counter", "Failed outbox commits.");
  Sample(out, "vitalgate_store_errors_total", stats_.store_errors.load());
  Metric(out, "vitalgate_broker_connected", "gauge", "1 while connected to the broker.");
  Sample(out, "vitalgate_broker_connected", stats_.broker_connected.load() ? 1 : 0);
  Metric(out, "vitalgate_broker_connects_total", "counter", "Successful broker connections.");
  Sample(out, "vitalgate_broker_connects_total", stats_.broker_connects.load());
  Metric(out, "vitalgate_messages_published_total", "counter", "MQTT messages acknowledged.");
  Sample(out, "vitalgate_messages_published_total", stats_.messages_published.load());
  Metric(out, "vitalgate_publish_errors_total", "counter", "Publish attempts that failed.");
  Sample(out, "vitalgate_publish_errors_total", stats_.publish_errors.load());
  Metric(out, "vitalgate_downlink_rejected_total", "counter", "Inbound messages rejected.");
  Sample(out, "vitalgate_downlink_rejected_total", stats_.downlink_rejected.load());
  Metric(out, "vitalgate_acks_total", "counter", "Alert acknowledgements by result.");
  Sample(out, "vitalgate_acks_total", stats_.acks_applied.load(), "result=\"applied\"");
  Sample(out, "vitalgate_acks_total", stats_.acks_rejected.load(), "result=\"rejected\"");
  Metric(out, "vitalgate_publish_latency_seconds", "histogram",
         "Time from a reading's or alert's receipt to the broker's acknowledgement.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBoundsMs.size(); ++i) {
    cumulative += stats_.publish_latency.bucket(i);
    std::string le = "le=\"";
    AppendJsonNumber(le, LatencyHistogram::kBoundsMs[i] / 1000.0);
    le += '"';
    Sample(out, "vitalgate_publish_latency_seconds_bucket", cumulative, le);
  }
  cumulative += stats_.publish_latency.bucket(LatencyHistogram::kBoundsMs.size());
  Sample(out, "vitalgate_publish_latency_seconds_bucket", cumulative, "le=\"+Inf\"");
  out += "vitalgate_publish_latency_seconds_sum ";
  AppendJsonNumber(out, stats_.publish_latency.sum_ms() / 1000.0);
  out += '\n';
  Sample(out, "vitalgate_publish_latency_seconds_count", stats_.publish_latency.count());
  return out;
}

}  // namespace vg
