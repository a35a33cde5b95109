// The MLLP link: one message in flight over TCP (TLS unless the receiver is on loopback), each
// answered by an ACK before the next is sent. Blocking calls bounded by deadlines, built on a
// private io_context that only the owning thread runs.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <cmath>
#include <deque>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "vitalgate/forward/hl7.h"
#include "vitalgate/core/net.h"

namespace vg {
namespace hl7 {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using Deadline = std::chrono::steady_clock::time_point;
using nlohmann::json;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::array<std::string_view, 2> kTlsVersions{"1.2", "1.3"};
constexpr std::array<std::string_view, 3> kProcessingIds{"P", "T", "D"};

constexpr OptionSpec kTlsSpecs[] = {
    {"ca_file", OptionType::kString, "", "PEM CA bundle that signed the receiver's certificate.",
     true, -kInf, kInf, {}, FileCheck::kReadable},
    {"cert_file", OptionType::kString, "\"\"",
     "PEM client certificate, for receivers that require one.", false, -kInf, kInf, {},
     FileCheck::kReadable},
    {"key_file", OptionType::kString, "\"\"",
     "PEM private key of cert_file; must not be readable by group or others.", false, -kInf,
     kInf, {}, FileCheck::kSecret},
    {"min_version", OptionType::kString, "\"1.2\"", "Lowest TLS version accepted: 1.2 or 1.3.",
     false, -kInf, kInf, kTlsVersions},
};

constexpr OptionSpec kLinkSpecs[] = {
    {"host", OptionType::kString, "", "Host name or IP address of the interface engine.", true},
    {"port", OptionType::kInteger, "2575", "MLLP port (2575 is registered for HL7).", false, 1,
     65535},
    {"tls", OptionType::kObject, "",
     "TLS: ca_file, cert_file, key_file, min_version; absent means plain TCP, allowed only to a "
     "loopback host."},
    {"sending_application", OptionType::kString, "\"vitalgate\"", "MSH-3 Sending Application."},
    {"sending_facility", OptionType::kString, "\"\"", "MSH-4 Sending Facility."},
    {"receiving_application", OptionType::kString, "\"\"", "MSH-5 Receiving Application."},
    {"receiving_facility", OptionType::kString, "\"\"", "MSH-6 Receiving Facility."},
    {"assigning_authority", OptionType::kString, "\"\"",
     "PID-3 assigning authority: a namespace id, or namespace&OID&ISO."},
    {"processing_id", OptionType::kString, "\"P\"",
     "MSH-11: P production, T training, D debugging.", false, -kInf, kInf, kProcessingIds},
    {"timeout_s", OptionType::kNumber, "30",
     "Bound on connecting, and on sending one message and receiving its ACK.", false, 1, 600},
    {"max_retries", OptionType::kInteger, "3",
     "How often one message answered AE or CE is sent again; the next such answer refuses it "
     "for good (dead letter).",
     false, 0, 1000},
};

// What the receiver said, bounded for status pages and logs.
std::string Bounded(std::string text) {
  constexpr std::size_t kMax = 200;
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return text;
}

std::string OpenSslReason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unreadable";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  return buf.data();
}

// Keys of `obj` that are not in `specs` (the daemon's common keys, "type"): passed through.
std::vector<std::string_view> ForeignKeys(const json& obj, std::span<const OptionSpec> specs) {
  std::vector<std::string_view> keys;
  if (!obj.is_object()) return keys;
  for (const auto& item : obj.items()) {
    bool known = false;
    for (const OptionSpec& s : specs) known = known || s.name == item.key();
    if (!known) keys.push_back(item.key());
  }
  return keys;
}

// State of one asynchronous operation run to completion by RunUntil().
struct Op {
  bool done = false;
  boost::system::error_code ec;
  std::size_t bytes = 0;
  tcp::resolver::results_type endpoints;
};

// The completion handler of a read or write: records the result in `op`.
auto Transferred(const std::shared_ptr<Op>& op) {
  return [op](const boost::system::error_code& ec, std::size_t n) {
    op->ec = ec;
    op->bytes = n;
    op->done = true;
  };
}

class MllpLink final : public RequestLink {
 public:
  MllpLink(LinkOptions options, const Clock& clock)
      : o_(std::move(options)), clock_(clock), reader_(o_.max_ack_bytes) {}
  ~MllpLink() override { Close(); }

  Status Connect(std::chrono::milliseconds timeout) override {
    Close();
    const Deadline deadline = std::chrono::steady_clock::now() + std::min(timeout, o_.timeout);
    tcp::resolver resolver(io_);
    auto op = std::make_shared<Op>();
    resolver.async_resolve(o_.host, std::to_string(o_.port),
                           [op](const boost::system::error_code& ec,
                                const tcp::resolver::results_type& results) {
                             op->ec = ec;
                             op->endpoints = results;
                             op->done = true;
                           });
    if (!RunUntil(op, deadline, [&resolver] { resolver.cancel(); })) {
      return Unavailable("cannot resolve " + o_.host + ": timed out");
    }
    if (op->ec) return Unavailable("cannot resolve " + o_.host + ": " + op->ec.message());

    socket_ = std::make_unique<tcp::socket>(io_);
    auto conn = std::make_shared<Op>();
    asio::async_connect(*socket_, op->endpoints,
                        [conn](const boost::system::error_code& ec, const tcp::endpoint&) {
                          conn->ec = ec;
                          conn->done = true;
                        });
    if (!RunUntil(conn, deadline, [this] { Abort(); })) {
      Close();
      return Unavailable("cannot connect to " + Describe() + ": timed out");
    }
    if (conn->ec) {
      const std::string why = conn->ec.message();
      Close();
      return Unavailable("cannot connect to " + Describe() + ": " + why);
    }
    boost::system::error_code ignored;
    socket_->set_option(tcp::no_delay(true), ignored);
    socket_->set_option(asio::socket_base::keep_alive(true), ignored);
    if (o_.tls) VG_RETURN_IF_ERROR(Handshake(deadline));
    connected_ = true;
    answered_ = false;
    reader_ = MllpReader(o_.max_ack_bytes);
    return Status::Ok();
  }

  void Close() override {
    connected_ = false;
    Abort();
    tls_.reset();
    socket_.reset();
    tls_context_.reset();
    io_.restart();
    io_.poll();  // handlers of aborted operations, if any
  }

  DeliveryOutcome Deliver(const DeliveryBatch& batch, std::chrono::milliseconds timeout) override {
    const Deadline deadline = std::chrono::steady_clock::now() + timeout;
    DeliveryOutcome out;
    out.rows.resize(batch.rows.size());
    const RenderedBatch rendered = RenderBatch(batch, o_.message, clock_.WallMs());
    std::vector<bool> settled(batch.rows.size(), false);  // refused or to be retried
    for (const auto& [index, reason] : rendered.rejected) {
      out.rows[index] = {RowOutcome::Kind::kRejected, reason};
      settled[index] = true;
    }
    for (const Message& m : rendered.messages) {
      bool pending = false;
      for (std::size_t row : m.rows) pending = pending || !settled[row];
      if (!pending) continue;  // e.g. the score report of a NEWS2 event was already refused
      if (!connected_) return Failed(out, "not connected");
      const Deadline until = std::min(deadline, std::chrono::steady_clock::now() + o_.timeout);
      Result<Ack> ack = Exchange(m, until);
      if (!ack.ok()) return Failed(out, ack.status().message());
      if (ack->control_id != m.control_id) {
        return Failed(out, "ACK for message " + Bounded(ack->control_id) + ", expected " +
                               m.control_id);
      }
      const RowOutcome verdict = Judge(m.control_id, *ack);
      if (verdict.kind == RowOutcome::Kind::kDelivered) continue;
      for (std::size_t row : m.rows) {
        if (settled[row]) continue;
        out.rows[row] = verdict;
        settled[row] = true;
      }
    }
    return out;
  }

  std::string Describe() const override {
    const bool v6 = o_.host.find(':') != std::string::npos;
    return std::string(o_.tls ? "mllp+tls://" : "mllp://") + (v6 ? "[" : "") + o_.host +
           (v6 ? "]" : "") + ":" + std::to_string(o_.port);
  }

 private:
  // Runs the private io_context until `op` completes or the deadline passes; then `abort`
  // cancels it and its handler is run. False on the deadline.
  template <typename Abort>
  bool RunUntil(const std::shared_ptr<Op>& op, Deadline deadline, Abort abort) {
    io_.restart();
    while (!op->done && io_.run_one_until(deadline) > 0) {
    }
    if (op->done) return true;
    abort();
    // Socket operations complete at once when their socket is closed (so no buffer is used
    // after we return); a name lookup cannot be interrupted and is left to finish on its own,
    // its handler touching nothing but `op`.
    const Deadline grace = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    io_.restart();
    while (!op->done && io_.run_one_until(grace) > 0) {
    }
    return false;
  }

  void Abort() {
    if (socket_ == nullptr) return;
    boost::system::error_code ignored;
    socket_->cancel(ignored);
    socket_->close(ignored);
  }

  DeliveryOutcome Failed(DeliveryOutcome& out, std::string reason) {
    Close();
    out.rows.clear();
    out.failure = LinkFailure{Bounded(std::move(reason)), std::nullopt};
    return std::move(out);
  }

  std::string TlsHint() const {
    if (!o_.cert_file.empty()) return {};
    return "; the receiver may require a client certificate (" + o_.path + ".tls.cert_file, " +
           o_.path + ".tls.key_file)";
  }

  Status MakeTlsContext() {
    tls_context_ = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX* ctx = tls_context_->native_handle();
    SSL_CTX_set_min_proto_version(ctx, o_.tls_min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, o_.ca_file.c_str(), nullptr) != 1) {
      return InvalidArgument(o_.path + ".tls.ca_file: " + o_.ca_file + ": " + OpenSslReason());
    }
    if (!o_.cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx, o_.cert_file.c_str()) != 1) {
        return InvalidArgument(o_.path + ".tls.cert_file: " + o_.cert_file + ": " +
                               OpenSslReason());
      }
      if (SSL_CTX_use_PrivateKey_file(ctx, o_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return InvalidArgument(o_.path + ".tls.key_file: " + o_.key_file + ": " + OpenSslReason());
      }
      if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return InvalidArgument(o_.path + ".tls.key_file: " + o_.key_file + ": does not belong to " +
                               o_.cert_file);
      }
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    return Status::Ok();
  }

  Status Handshake(Deadline deadline) {
    if (Status s = MakeTlsContext(); !s.ok()) {
      Close();
      return s;
    }
    tls_ = std::make_unique<ssl::stream<tcp::socket&>>(*socket_, *tls_context_);
    SSL* ssl = tls_->native_handle();
    // The receiver's certificate must name the configured host in its subjectAltName.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(
        param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    boost::system::error_code not_ip;
    asio::ip::make_address(o_.host, not_ip);
    if (!not_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, o_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, o_.host.c_str(), 0);
      SSL_set_tlsext_host_name(ssl, o_.host.c_str());
    }
    auto op = std::make_shared<Op>();
    tls_->async_handshake(ssl::stream_base::client, [op](const boost::system::error_code& ec) {
      op->ec = ec;
      op->done = true;
    });
    const bool finished = RunUntil(op, deadline, [this] { Abort(); });
    if (finished && !op->ec) return Status::Ok();
    std::string why = finished ? op->ec.message() : "timed out";
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why = std::string("certificate verification failed: ") +
            X509_verify_cert_error_string(verify);
    } else if (finished) {
      why += TlsHint();
    }
    ERR_clear_error();
    Close();
    return Unavailable("TLS handshake with " + Describe() + ": " + why);
  }

  template <typename F>
  void WithStream(F&& f) {
    if (tls_ != nullptr) {
      f(*tls_);
    } else {
      f(*socket_);
    }
  }

  // Sends one framed message and reads frames until its ACK arrives.
  Result<Ack> Exchange(const Message& m, Deadline deadline) {
    if (reader_.InFrame()) return Unavailable("unexpected data from the receiver before sending");
    if (reader_.Next()) return Unavailable("unexpected message from the receiver");
    std::string frame;
    AppendMllpFrame(frame, m.text);
    auto sent = std::make_shared<Op>();
    WithStream([&frame, sent](auto& stream) {
      asio::async_write(stream, asio::buffer(frame), Transferred(sent));
    });
    if (!RunUntil(sent, deadline, [this] { Abort(); })) {
      return Unavailable("sending " + m.control_id + " timed out");
    }
    if (sent->ec) return Unavailable("sending " + m.control_id + ": " + sent->ec.message());
    while (true) {
      if (auto message = reader_.Next()) {
        auto ack = ParseAck(*message);
        if (!ack.ok()) return Unavailable("unreadable answer to " + m.control_id + ": " +
                                          ack.status().message());
        answered_ = true;
        return ack;
      }
      auto got = std::make_shared<Op>();
      WithStream([this, got](auto& stream) {
        stream.async_read_some(asio::buffer(buffer_), Transferred(got));
      });
      if (!RunUntil(got, deadline, [this] { Abort(); })) {
        return Unavailable("no ACK for " + m.control_id + " within the timeout");
      }
      if (got->ec) {
        std::string why = got->ec == asio::error::eof || got->ec == ssl::error::stream_truncated
                              ? "connection closed by the receiver"
                              : got->ec.message();
        // A TLS 1.3 receiver refuses a missing client certificate after the handshake, so
        // the first read on the connection is where that shows.
        if (tls_ != nullptr && !answered_) why += TlsHint();
        return Unavailable(why + " before the ACK for " + m.control_id);
      }
      VG_RETURN_IF_ERROR(reader_.Feed(std::string_view(buffer_.data(), got->bytes)));
    }
  }

  // AA/CA: delivered. AE/CE: retried until the same message got more than max_retries of
  // them, then refused. AR/CR: refused.
  RowOutcome Judge(const std::string& control_id, const Ack& ack) {
    const std::string said = ack.text.empty() ? "" : ": " + Bounded(ack.text);
    switch (ack.code) {
      case AckCode::kAA:
      case AckCode::kCA:
        ae_counts_.erase(control_id);
        return {RowOutcome::Kind::kDelivered, {}};
      case AckCode::kAR:
      case AckCode::kCR:
        ae_counts_.erase(control_id);
        return {RowOutcome::Kind::kRejected, "HL7 " + std::string(Name(ack.code)) + said};
      case AckCode::kAE:
      case AckCode::kCE: break;
    }
    const int count = ++ae_counts_[control_id];
    if (count == 1) {
      ae_order_.push_back(control_id);
      while (ae_order_.size() > kMaxTracked) {
        ae_counts_.erase(ae_order_.front());
        ae_order_.pop_front();
      }
    }
    if (count > o_.max_retries) {
      ae_counts_.erase(control_id);
      return {RowOutcome::Kind::kRejected, "HL7 " + std::string(Name(ack.code)) + " " +
                                               std::to_string(count) + " times" + said};
    }
    return {RowOutcome::Kind::kRetry, "HL7 " + std::string(Name(ack.code)) + said};
  }

  static constexpr std::size_t kMaxTracked = 4096;

  LinkOptions o_;
  const Clock& clock_;
  asio::io_context io_;
  std::unique_ptr<tcp::socket> socket_;
  std::unique_ptr<ssl::context> tls_context_;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls_;
  bool connected_ = false;
  bool answered_ = false;  // an ACK arrived on this connection
  MllpReader reader_;
  std::array<char, 16384> buffer_{};
  std::map<std::string, int> ae_counts_;
  std::deque<std::string> ae_order_;
};

Status CheckOptions(const json& options, std::string_view path) {
  auto parsed = ParseLinkOptions(options, path);
  if (!parsed.ok()) return parsed.status();
  if (options.contains("tls")) {
    // Files exist, are readable, and the key is private (the loader checks top-level keys).
    OptionContext ctx;
    auto tls = ApplyOptionSpecs(options["tls"], kTlsSpecs, JoinPath(path, "tls"), ctx);
    if (!tls.ok()) return tls.status();
  }
  return Status::Ok();
}

Result<std::unique_ptr<RequestLink>> MakeLink(const json& options) {
  auto parsed = ParseLinkOptions(options, "hl7v2");
  if (!parsed.ok()) return parsed.status();
  return MakeMllpLink(std::move(*parsed), SystemClock::Instance());
}

}  // namespace

std::span<const OptionSpec> LinkOptionSpecs() { return kLinkSpecs; }
std::span<const OptionSpec> TlsOptionSpecs() { return kTlsSpecs; }

Result<LinkOptions> ParseLinkOptions(const json& options, std::string_view path) {
  const std::string where(path);
  const std::vector<std::string_view> foreign = ForeignKeys(options, kLinkSpecs);
  OptionContext no_files;
  no_files.check_files = false;
  auto validated = ApplyOptionSpecs(options, kLinkSpecs, path, no_files, foreign);
  if (!validated.ok()) return validated.status();
  const json& v = *validated;
  auto str = [&v](const char* key) { return v.at(key).get<std::string>(); };
  LinkOptions o;
  o.path = where;
  o.host = str("host");
  if (o.host.empty()) return InvalidArgument(JoinPath(path, "host") + ": must not be empty");
  o.port = v.at("port").get<std::uint16_t>();
  o.message.sending_application = str("sending_application");
  o.message.sending_facility = str("sending_facility");
  o.message.receiving_application = str("receiving_application");
  o.message.receiving_facility = str("receiving_facility");
  o.message.assigning_authority = str("assigning_authority");
  o.message.processing_id = str("processing_id");
  if (std::count(o.message.assigning_authority.begin(), o.message.assigning_authority.end(),
                 '&') > 2) {
    return InvalidArgument(JoinPath(path, "assigning_authority") +
                           ": expected a namespace id or namespace&OID&ISO");
  }
  o.timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>(std::llround(v.at("timeout_s").get<double>() * 1000)));
  o.max_retries = v.at("max_retries").get<int>();
  if (v.contains("tls")) {
    auto tls = ApplyOptionSpecs(v.at("tls"), kTlsSpecs, JoinPath(path, "tls"), no_files);
    if (!tls.ok()) return tls.status();
    o.tls = true;
    o.ca_file = tls->at("ca_file").get<std::string>();
    o.cert_file = tls->at("cert_file").get<std::string>();
    o.key_file = tls->at("key_file").get<std::string>();
    o.tls_min_version = tls->at("min_version").get<std::string>();
    if (o.cert_file.empty() != o.key_file.empty()) {
      return InvalidArgument(JoinPath(path, "tls") +
                             ": cert_file and key_file must be given together");
    }
  } else if (!IsLoopbackHost(o.host)) {
    return InvalidArgument(JoinPath(path, "tls") + ": required for host " + o.host +
                           " (plain TCP only to localhost, 127.0.0.1 or ::1)");
  }
  return o;
}

std::unique_ptr<RequestLink> MakeMllpLink(LinkOptions options, const Clock& clock) {
  return std::make_unique<MllpLink>(std::move(options), clock);
}

}  // namespace hl7

const DestinationDescriptor& Hl7Destination() {
  static const DestinationDescriptor kDescriptor{
      "hl7v2",
      "HL7 v2.6 over MLLP to an interface engine: IHE PCD-01 readings, PCD-04 alarms",
      hl7::LinkOptionSpecs(),
      &hl7::MakeLink,
      &hl7::CheckOptions,
      100,
  };
  return kDescriptor;
}

}  // namespace vg
