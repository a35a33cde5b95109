// The "fhir" destination: transaction Bundles POSTed to a FHIR server over HTTPS (docs/fhir.md).
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vitalgate/forward/fhir.h"
#include "vitalgate/core/net.h"
#include "vitalgate/forward/tls_files.h"

namespace vg {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::array<std::string_view, 2> kTlsVersions{"1.2", "1.3"};
constexpr std::array<std::string_view, 2> kReferenceModes{"identifier", "literal"};

constexpr OptionSpec kTlsSpecs[] = {
    {"ca_file", OptionType::kString, "", "PEM CA bundle that signed the FHIR server's certificate.",
     true, -1e300, 1e300, {}, FileCheck::kReadable},
    {"cert_file", OptionType::kString, "\"\"", "PEM client certificate (mutual TLS).", false,
     -1e300, 1e300, {}, FileCheck::kReadable},
    {"key_file", OptionType::kString, "\"\"",
     "PEM private key of cert_file; must not be readable by group or others.", false, -1e300,
     1e300, {}, FileCheck::kSecret},
    {"min_version", OptionType::kString, "\"1.2\"", "Lowest TLS version accepted: 1.2 or 1.3.",
     false, -1e300, 1e300, kTlsVersions},
};

constexpr OptionSpec kSpecs[] = {
    {"url", OptionType::kString, "",
     "FHIR base URL, e.g. https://ehr.example/fhir; transaction Bundles are POSTed to it. "
     "http:// only to a loopback host.",
     true},
    {"tls", OptionType::kObject, "",
     "TLS settings {ca_file, cert_file, key_file, min_version}; required for https. The server "
     "certificate must name the URL's host in subjectAltName."},
    {"token_file", OptionType::kString, "\"\"",
     "File holding a bearer token on its first line (sent as Authorization: Bearer); mode 0600.",
     false, -1e300, 1e300, {}, FileCheck::kSecret},
    {"patient_identifier_system", OptionType::kString, "\"urn:vitalgate:patient-id\"",
     "Identifier system (assigning authority) of the patient ids, as in HL7 PID-3."},
    {"patient_reference", OptionType::kString, "\"identifier\"",
     "identifier: subject by identifier (a conditional reference the server resolves); literal: "
     "subject Patient/{id}, the patient id being the server's logical id.",
     false, -1e300, 1e300, kReferenceModes},
    {"timeout_s", OptionType::kNumber, "10",
     "Upper bound of one request (connect, TLS handshake, send, answer).", false, 0.1, 600},
};

struct Url {
  bool tls = true;
  std::string host;
  std::string port;
  std::string target;  // path of the base URL, "/" at least
};

Result<Url> ParseUrl(std::string_view text, std::string_view key) {
  Url u;
  std::string_view rest;
  if (text.substr(0, 8) == "https://") {
    rest = text.substr(8);
  } else if (text.substr(0, 7) == "http://") {
    u.tls = false;
    rest = text.substr(7);
  } else {
    return InvalidArgument(std::string(key) + ": expected an http:// or https:// URL");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target.find_first_of("?#") != std::string::npos) {
    return InvalidArgument(std::string(key) + ": the base URL must not have a query or fragment");
  }
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument(std::string(key) + ": credentials in the URL are not allowed; use token_file");
  }
  u.port = u.tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument(std::string(key) + ": unclosed [ in host");
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return InvalidArgument(std::string(key) + ": bad port");
      u.port = std::string(authority.substr(1));
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
  }
  if (u.host.empty()) return InvalidArgument(std::string(key) + ": no host");
  if (u.port.empty() || u.port.size() > 5 ||
      !std::all_of(u.port.begin(), u.port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) ||
      std::stoi(u.port) < 1 || std::stoi(u.port) > 65535) {
    return InvalidArgument(std::string(key) + ": port must be 1-65535");
  }
  return u;
}

Status CheckFhirOptions(const json& options, std::string_view path) {
  const std::string where(path);
  auto url = ParseUrl(options.value("url", ""), JoinPath(where, "url"));
  if (!url.ok()) return url.status();
  if (!url->tls && !IsLoopbackHost(url->host)) {
    return InvalidArgument(JoinPath(where, "url") +
                           ": plain http is allowed only to a loopback host; use https");
  }
  if (url->tls && !options.contains("tls")) {
    return InvalidArgument(JoinPath(where, "tls") + ": required for an https URL (at least ca_file)");
  }
  if (options.contains("tls")) {
    auto tls = ApplyOptionSpecs(options["tls"], kTlsSpecs, JoinPath(where, "tls"), OptionContext{});
    if (!tls.ok()) return tls.status();
    if ((*tls)["cert_file"].get<std::string>().empty() != (*tls)["key_file"].get<std::string>().empty()) {
      return InvalidArgument(JoinPath(where, "tls") + ": cert_file and key_file go together");
    }
    if (!url->tls) return InvalidArgument(JoinPath(where, "tls") + ": given for an http:// URL");
    VG_RETURN_IF_ERROR(CheckTlsFiles({(*tls)["ca_file"].get<std::string>(),
                                      (*tls)["cert_file"].get<std::string>(),
                                      (*tls)["key_file"].get<std::string>()}));
  }
  const std::string system = options.value("patient_identifier_system", "");
  if (system.find(':') == std::string::npos || system.find_first_of(" |") != std::string::npos) {
    return InvalidArgument(JoinPath(where, "patient_identifier_system") +
                           ": expected an absolute URI (e.g. urn:oid:1.2.3 or https://...) without spaces or '|'");
  }
  return Status::Ok();
}

// Retry-After: delta-seconds or an HTTP-date (RFC 9110 10.2.3).
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24));
    return std::chrono::seconds(std::stol(std::string(value)));
  }
  std::tm tm{};
  const std::string v(value);
  if (::strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
  const std::time_t at = ::timegm(&tm);
  const std::time_t now = std::time(nullptr);
  return std::chrono::seconds(at > now ? at - now : 0);
}

// The human-readable text of an OperationOutcome (details.text, else diagnostics), bounded.
std::string OutcomeText(const json& outcome) {
  std::string text;
  if (outcome.is_object() && outcome.contains("issue") && outcome["issue"].is_array()) {
    for (const json& issue : outcome["issue"]) {
      std::string t;
      if (issue.contains("details") && issue["details"].is_object() &&
          issue["details"].contains("text") && issue["details"]["text"].is_string()) {
        t = issue["details"]["text"].get<std::string>();
      } else if (issue.contains("diagnostics") && issue["diagnostics"].is_string()) {
        t = issue["diagnostics"].get<std::string>();
      }
      if (t.empty()) continue;
      if (!text.empty()) text += "; ";
      text += t;
    }
  }
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text;
}

// The entry index an OperationOutcome points at ("Bundle.entry[3]..."), if any.
std::optional<std::size_t> OutcomeEntry(const json& outcome) {
  if (!outcome.is_object() || !outcome.contains("issue") || !outcome["issue"].is_array()) return std::nullopt;
  for (const json& issue : outcome["issue"]) {
    for (const char* key : {"expression", "location"}) {
      if (!issue.contains(key) || !issue[key].is_array()) continue;
      for (const json& e : issue[key]) {
        if (!e.is_string()) continue;
        const std::string& s = e.get_ref<const std::string&>();
        const std::size_t at = s.find("entry[");
        if (at == std::string::npos) continue;
        std::size_t n = 0;
        std::size_t i = at + 6;
        bool digits = false;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0 && n < 1000000) {
          n = n * 10 + static_cast<std::size_t>(s[i] - '0');
          ++i;
          digits = true;
        }
        if (digits) return n;
      }
    }
  }
  return std::nullopt;
}

int StatusCodeOf(const json& entry) {
  if (!entry.is_object() || !entry.contains("response") || !entry["response"].is_object()) return 0;
  const json& r = entry["response"];
  if (!r.contains("status") || !r["status"].is_string()) return 0;
  const std::string& s = r["status"].get_ref<const std::string&>();
  if (s.size() < 3 || !std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) || !std::isdigit(static_cast<unsigned char>(s[2]))) {
    return 0;
  }
  return std::stoi(s.substr(0, 3));
}

class FhirLink final : public RequestLink {
 public:
  FhirLink(Url url, std::string describe, json tls, std::string token_file, fhir::RenderOptions render,
           std::chrono::milliseconds request_timeout)
      : url_(std::move(url)),
        describe_(std::move(describe)),
        tls_(std::move(tls)),
        token_file_(std::move(token_file)),
        render_(std::move(render)),
        request_timeout_(request_timeout) {}

  ~FhirLink() override { Close(); }

  Status Connect(std::chrono::milliseconds timeout) override {
    Close();
    const auto deadline = Clock::now() + std::min(timeout, request_timeout_);
    VG_RETURN_IF_ERROR(ReadToken());
    if (url_.tls) VG_RETURN_IF_ERROR(MakeSslContext());
    asio::ip::tcp::resolver resolver(io_);
    beast::error_code ec = asio::error::would_block;
    asio::ip::tcp::resolver::results_type endpoints;
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code e, asio::ip::tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                           });
    if (!RunUntil(deadline, [&] { resolver.cancel(); })) {
      return Unavailable(describe_ + ": resolving " + url_.host + " timed out");
    }
    if (ec) return Unavailable(describe_ + ": resolving " + url_.host + ": " + ec.message());
    plain_ = std::make_unique<beast::tcp_stream>(io_);
    plain_->expires_at(deadline);
    ec = asio::error::would_block;
    plain_->async_connect(endpoints, [&](beast::error_code e, const asio::ip::tcp::endpoint&) { ec = e; });
    RunUntil(deadline, [this] { plain_->socket().close(); });
    if (ec) {
      Close();
      return Unavailable(describe_ + ": connect: " + ec.message());
    }
    // A request's last segment must not wait for the previous one's delayed ACK (Nagle): one
    // request is in flight at a time, so that wait would be paid on every Bundle.
    beast::error_code ignored;
    plain_->socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    if (!url_.tls) return Status::Ok();
    tls_stream_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*plain_), *ssl_ctx_);
    plain_.reset();
    SSL* ssl = tls_stream_->native_handle();
    in6_addr addr6{};
    in_addr addr4{};
    const bool is_ip = ::inet_pton(AF_INET, url_.host.c_str(), &addr4) == 1 ||
                       ::inet_pton(AF_INET6, url_.host.c_str(), &addr6) == 1;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url_.host.c_str())
                          : X509_VERIFY_PARAM_set1_host(param, url_.host.c_str(), 0);
    if (set != 1) {
      Close();
      return InvalidArgument(describe_ + ": cannot verify host name " + url_.host);
    }
    if (!is_ip) SSL_set_tlsext_host_name(ssl, url_.host.c_str());
    beast::get_lowest_layer(*tls_stream_).expires_at(deadline);
    ec = asio::error::would_block;
    tls_stream_->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    RunUntil(deadline, [this] { beast::get_lowest_layer(*tls_stream_).socket().close(); });
    if (ec) {
      Close();
      return Unavailable(describe_ + ": TLS handshake: " + ec.message());
    }
    return Status::Ok();
  }

  void Close() override {
    if (tls_stream_) {
      beast::error_code ignored;
      beast::get_lowest_layer(*tls_stream_).socket().close(ignored);
      tls_stream_.reset();
    }
    if (plain_) {
      beast::error_code ignored;
      plain_->socket().close(ignored);
      plain_.reset();
    }
    buffer_.clear();
    io_.restart();
    io_.poll();  // completes any handler still queued for the closed sockets
    io_.restart();
  }

  DeliveryOutcome Deliver(const DeliveryBatch& batch, std::chrono::milliseconds timeout) override {
    DeliveryOutcome outcome;
    const auto deadline = Clock::now() + std::min(timeout, request_timeout_);
    if (batch.rows.empty()) return outcome;
    static const RenderContext kEmpty;
    const RenderContext& context = batch.context ? *batch.context : kEmpty;
    fhir::RenderOptions options = render_;
    options.bundle_type = fhir::BundleType::kTransaction;
    fhir::RenderedBundle bundle;
    if (batch.kind == DeliveryBatch::Kind::kReadings) {
      bundle = fhir::RenderReadings(batch.patient, batch.rows, context, options);
    } else if (batch.kind == DeliveryBatch::Kind::kAlert && batch.rows.size() == 1) {
      bundle = fhir::RenderAlert(*batch.rows[0], context, options);
    } else {
      // Audit events have no FHIR rendering here; they are not this destination's to deliver.
      outcome.rows.assign(batch.rows.size(),
                          RowOutcome{RowOutcome::Kind::kDelivered, {}});
      return outcome;
    }
    outcome.rows.resize(batch.rows.size());
    for (std::size_t i = 0; i < batch.rows.size(); ++i) {
      if (!bundle.row_entry[i]) outcome.rows[i] = {RowOutcome::Kind::kRejected, bundle.row_error[i]};
    }
    if (bundle.json.empty()) return outcome;  // nothing renderable: every row rejected above

    if (!Connected()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (Status s = Connect(left); !s.ok()) return Failure(s.message());
    }
    auto response = Exchange(bundle.json, deadline);
    if (!response.ok()) {
      Close();
      return Failure(response.status().message());
    }
    if (!response->keep_alive()) Close();
    return ReadAnswer(*response, bundle, std::move(outcome));
  }

  std::string Describe() const override { return describe_; }

 private:
  using Response = http::response<http::string_body>;

  static DeliveryOutcome Failure(std::string reason,
                                 std::optional<std::chrono::milliseconds> retry_after = std::nullopt) {
    DeliveryOutcome o;
    o.failure = LinkFailure{std::move(reason), retry_after};
    return o;
  }

  bool Connected() const { return tls_stream_ != nullptr || plain_ != nullptr; }

  // Runs the io_context until the pending operation completes or `deadline` passes; then
  // `cancel` aborts it and its handler is drained. Returns false on timeout.
  template <class Cancel>
  bool RunUntil(Clock::time_point deadline, Cancel cancel) {
    io_.restart();
    io_.run_until(deadline);
    if (io_.stopped()) return true;
    cancel();
    io_.restart();
    io_.run_for(std::chrono::seconds(1));
    return false;
  }

  Status ReadToken() {
    token_.clear();
    if (token_file_.empty()) return Status::Ok();
    VG_RETURN_IF_ERROR(CheckFile(token_file_, FileCheck::kSecret, describe_ + ": token_file"));
    std::ifstream in(token_file_);
    std::getline(in, token_);
    while (!token_.empty() && std::isspace(static_cast<unsigned char>(token_.back())) != 0) token_.pop_back();
    if (token_.empty() || token_.find_first_of(" \t\r\n") != std::string::npos) {
      return InvalidArgument(describe_ + ": token_file " + token_file_ +
                             ": expected one token on the first line");
    }
    return Status::Ok();
  }

  Status MakeSslContext() {
    ssl_ctx_.emplace(ssl::context::tls_client);
    SSL_CTX* ctx = ssl_ctx_->native_handle();
    const bool v13 = tls_.value("min_version", "1.2") == "1.3";
    SSL_CTX_set_min_proto_version(ctx, v13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    beast::error_code ec;
    ssl_ctx_->load_verify_file(tls_.value("ca_file", ""), ec);
    if (ec) return InvalidArgument(describe_ + ": tls.ca_file: " + ec.message());
    ssl_ctx_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    const std::string cert = tls_.value("cert_file", "");
    if (!cert.empty()) {
      ssl_ctx_->use_certificate_chain_file(cert, ec);
      if (ec) return InvalidArgument(describe_ + ": tls.cert_file: " + ec.message());
      ssl_ctx_->use_private_key_file(tls_.value("key_file", ""), ssl::context::pem, ec);
      if (ec) return InvalidArgument(describe_ + ": tls.key_file: " + ec.message());
    }
    return Status::Ok();
  }

  template <class Stream>
  Result<Response> ExchangeOn(Stream& stream, beast::tcp_stream& lowest, http::request<http::string_body>& req,
                              Clock::time_point deadline) {
    lowest.expires_at(deadline);
    beast::error_code ec = asio::error::would_block;
    http::async_write(stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    RunUntil(deadline, [&lowest] { lowest.socket().close(); });
    if (ec) return Unavailable(describe_ + ": sending: " + ec.message());
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    ec = asio::error::would_block;
    http::async_read(stream, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
    RunUntil(deadline, [&lowest] { lowest.socket().close(); });
    if (ec) return Unavailable(describe_ + ": reading the answer: " + ec.message());
    return parser.release();
  }

  Result<Response> Exchange(const std::string& body, Clock::time_point deadline) {
    http::request<http::string_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "vitalgate");
    req.set(http::field::content_type, "application/fhir+json");
    req.set(http::field::accept, "application/fhir+json");
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    if (tls_stream_) return ExchangeOn(*tls_stream_, beast::get_lowest_layer(*tls_stream_), req, deadline);
    return ExchangeOn(*plain_, *plain_, req, deadline);
  }

  DeliveryOutcome ReadAnswer(const Response& res, const fhir::RenderedBundle& bundle, DeliveryOutcome outcome) {
    const int status = static_cast<int>(res.result_int());
    const std::string http_status = "HTTP " + std::to_string(status);
    if (status == 429 || status == 503) {
      return Failure(describe_ + ": " + http_status, ParseRetryAfter(std::string(res[http::field::retry_after])));
    }
    const json body = json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
    if (status >= 200 && status < 300) {
      if (body.is_discarded() || !body.is_object() || body.value("resourceType", "") != "Bundle" ||
          !body.contains("entry") || !body["entry"].is_array()) {
        return Failure(describe_ + ": " + http_status + " without a transaction-response Bundle");
      }
      const json& entries = body["entry"];
      for (std::size_t i = 0; i < outcome.rows.size(); ++i) {
        if (!bundle.row_entry[i]) continue;
        const std::size_t e = *bundle.row_entry[i];
        if (e >= entries.size()) {
          return Failure(describe_ + ": the transaction-response has fewer entries than the request");
        }
        const int entry_status = StatusCodeOf(entries[e]);
        const json& resp = entries[e]["response"];
        const std::string text = resp.is_object() && resp.contains("outcome") ? OutcomeText(resp["outcome"]) : "";
        if (entry_status >= 200 && entry_status < 300) {
          outcome.rows[i] = {RowOutcome::Kind::kDelivered, {}};
        } else if (entry_status >= 400 && entry_status < 500) {
          outcome.rows[i] = {RowOutcome::Kind::kRejected,
                             "HTTP " + std::to_string(entry_status) + (text.empty() ? "" : ": " + text)};
        } else if (entry_status >= 500) {
          outcome.rows[i] = {RowOutcome::Kind::kRetry,
                             "HTTP " + std::to_string(entry_status) + (text.empty() ? "" : ": " + text)};
        } else {
          return Failure(describe_ + ": a transaction-response entry without a status");
        }
      }
      return outcome;
    }
    // The whole transaction was refused. Authentication, a wrong URL or a temporary condition
    // is the link's problem, not the data's: retried later.
    if (status == 401 || status == 403 || status == 404 || status == 405 || status == 408 ||
        status == 413 || status < 400 || status >= 500) {
      return Failure(describe_ + ": " + http_status);
    }
    // Another 4xx: the content was refused. Where the OperationOutcome names an entry, only its
    // rows are rejected and the rest are sent again without them.
    const std::string text = OutcomeText(body);
    const std::string reason = http_status + (text.empty() ? "" : ": " + text);
    const std::optional<std::size_t> culprit = OutcomeEntry(body);
    bool located = false;
    if (culprit) {
      for (std::size_t i = 0; i < outcome.rows.size(); ++i) located = located || bundle.row_entry[i] == culprit;
    }
    for (std::size_t i = 0; i < outcome.rows.size(); ++i) {
      if (!bundle.row_entry[i]) continue;
      if (!located || bundle.row_entry[i] == culprit) {
        outcome.rows[i] = {RowOutcome::Kind::kRejected, reason};
      } else {
        outcome.rows[i] = {RowOutcome::Kind::kRetry, "another entry of the transaction was refused"};
      }
    }
    return outcome;
  }

  Url url_;
  std::string describe_;
  json tls_;
  std::string token_file_;
  std::string token_;
  fhir::RenderOptions render_;
  std::chrono::milliseconds request_timeout_;
  asio::io_context io_;
  std::optional<ssl::context> ssl_ctx_;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream_;
  beast::flat_buffer buffer_;
};

Result<std::unique_ptr<RequestLink>> MakeFhirLink(const json& options) {
  auto url = ParseUrl(options.value("url", ""), "url");
  if (!url.ok()) return url.status();
  json tls = json::object();
  if (options.contains("tls")) {
    OptionContext ctx;
    ctx.check_files = false;
    auto applied = ApplyOptionSpecs(options["tls"], kTlsSpecs, "tls", ctx);
    if (!applied.ok()) return applied.status();
    tls = std::move(*applied);
  }
  if (url->tls && tls.value("ca_file", "").empty()) {
    return InvalidArgument("tls.ca_file: required for an https URL");
  }
  fhir::RenderOptions render;
  render.patient_identifier_system =
      options.value("patient_identifier_system", std::string(fhir::kDefaultPatientSystem));
  render.patient_reference = options.value("patient_reference", "identifier") == "literal"
                                 ? fhir::PatientReference::kLiteral
                                 : fhir::PatientReference::kIdentifier;
  const double timeout_s = options.value("timeout_s", 10.0);
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000.0));
  std::string describe = options.value("url", "");
  return std::unique_ptr<RequestLink>(std::make_unique<FhirLink>(
      std::move(*url), std::move(describe), std::move(tls), options.value("token_file", ""),
      std::move(render), timeout));
}

}  // namespace

const DestinationDescriptor& FhirDestination() {
  static const DestinationDescriptor kDescriptor{
      "fhir",
      "FHIR R4 server: transaction Bundles of Observations, Devices and Flags over HTTPS",
      kSpecs,
      &MakeFhirLink,
      &CheckFhirOptions,
      100,
  };
  return kDescriptor;
}

}  // namespace vg
