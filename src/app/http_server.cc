#include "vitalgate/app/http_server.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <spdlog/spdlog.h>
#include <vector>

#include "vitalgate/app/http_auth.h"
#include "vitalgate/core/json_text.h"

namespace vg {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::size_t kHeaderLimit = 8192;
constexpr auto kRequestTimeout = 5s;     // to send a complete request header
constexpr auto kLingerTimeout = 1s;      // to read what the client still sends after our answer
constexpr std::size_t kLingerBytes = 65536;
constexpr auto kBackoffMin = 50ms;
constexpr auto kBackoffMax = 1000ms;
constexpr auto kAcceptLogInterval = 10s;
constexpr int kListenBacklog = 128;
constexpr auto kVerifyTimeout = 10s;
constexpr std::int64_t kVerifiedTtlMs = 300'000;           // a checked password is trusted this long
constexpr std::int64_t kLoginAuditEveryMs = 12 * 3'600'000;  // successful logins: once per user and address
constexpr std::size_t kMaxPendingVerifications = 8;
constexpr std::size_t kMaxRemembered = 1024;

// What the server tracks of each connection: whether it may be replaced by a newer one.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the socket at once; pending operations complete with operation_aborted.
  virtual void Abort() = 0;
  bool idle = true;  // no complete request header yet
};

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string JsonObject(std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  std::string out = "{";
  for (const auto& [k, v] : fields) {
    if (out.size() > 1) out += ',';
    AppendJsonString(out, k);
    out += ':';
    AppendJsonString(out, v);
  }
  out += '}';
  return out;
}

struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

std::optional<FileStamp> Stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp{st.st_dev, st.st_ino, st.st_size,
                   static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::string CertificateSubject(SSL* ssl) {
  X509* cert = ::SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || ::SSL_get_verify_result(ssl) != X509_V_OK) return "";
  char cn[256] = {};
  const int n = ::X509_NAME_get_text_by_NID(::X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return n > 0 ? std::string(cn, static_cast<std::size_t>(n)) : std::string("(certificate without CN)");
}

// The server's TLS context: certificate and key (which must match), and the CA of client
// certificates if there is one.
Result<std::unique_ptr<ssl::context>> MakeTlsContext(const config::HttpTlsConfig& tls) {
  boost::system::error_code ec;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) return InvalidArgument("http.tls.cert_file: " + tls.cert_file + ": " + ec.message());
  ctx->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) return InvalidArgument("http.tls.key_file: " + tls.key_file + ": " + ec.message());
  if (::SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return InvalidArgument("http.tls.key_file: " + tls.key_file +
                           ": does not belong to the certificate of http.tls.cert_file");
  }
  if (!tls.ca_file.empty()) {
    ctx->load_verify_file(tls.ca_file, ec);
    if (ec) return InvalidArgument("http.tls.ca_file: " + tls.ca_file + ": " + ec.message());
    // Ask for a client certificate, but let clients without one log in with a password.
    ctx->set_verify_mode(ssl::verify_peer);
    if (STACK_OF(X509_NAME)* names = ::SSL_load_client_CA_file(tls.ca_file.c_str())) {
      ::SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    }
    static const unsigned char kContext[] = "vitalgate-http";
    ::SSL_CTX_set_session_id_context(ctx->native_handle(), kContext, sizeof kContext - 1);
  }
  return ctx;
}

}  // namespace

// --- the shared state of the server and its connections ---------------------------------------

class HttpServer::Core : public std::enable_shared_from_this<HttpServer::Core> {
 public:
  Core(boost::asio::io_context& io_in, const GatewayStats& stats_in, const Clock& clock_in,
       HealthInfo info_in, const StatusSource* status_in, HttpAuditFn audit_in)
      : io(io_in),
        stats(stats_in),
        clock(clock_in),
        info(std::move(info_in)),
        status(status_in),
        on_audit(std::move(audit_in)),
        acceptor(io_in),
        backoff_timer(io_in),
        started_ms(clock_in.WallMs()) {
    if (::RAND_bytes(cache_key.data(), static_cast<int>(cache_key.size())) != 1) {
      // Without randomness the cache key is predictable; passwords are then simply not cached.
      cache_usable = false;
    }
  }

  StatusSnapshot Snapshot() const {
    if (status != nullptr) return status->Snapshot();
    return SnapshotFromStats(stats, info, clock.WallMs(), started_ms);
  }
  std::int64_t MonoMs() const { return clock.MonotonicNs() / 1'000'000; }

  void Accept();
  void Stop();
  bool EvictOldestIdle();
  void Forget(std::uint64_t id) { connections.erase(id); }
  bool HostAllowed(std::string_view host) const;
  void RefreshUsers();
  std::string CacheKey(const std::string& user, const std::string& password) const;
  void Audit(const std::string& kind, const std::string& actor, const std::string& detail) {
    if (on_audit) on_audit(kind, actor, detail);
  }
  void AuditLogin(const std::string& actor, const std::string& address, const char* method);

  boost::asio::io_context& io;
  const GatewayStats& stats;
  const Clock& clock;
  HealthInfo info;
  const StatusSource* status;
  HttpAuditFn on_audit;
  tcp::acceptor acceptor;
  boost::asio::steady_timer backoff_timer;
  std::int64_t started_ms;
  bool stopped = false;

  // Access.
  std::unique_ptr<ssl::context> tls;  // null: plain HTTP (loopback only)
  bool check_host = false;
  boost::asio::ip::address listen_ip;
  unsigned short listen_port = 0;
  std::string users_file;
  std::vector<HttpUser> users;
  std::optional<FileStamp> users_stamp;
  std::int64_t users_checked_ms = 0;
  std::uint64_t users_generation = 0;
  LoginLimiter limiter;
  std::array<unsigned char, 32> cache_key{};
  bool cache_usable = true;
  std::map<std::string, std::int64_t> verified;        // cache key -> valid until (monotonic ms)
  std::map<std::string, std::int64_t> audited_logins;  // user + '\n' + address -> when (monotonic ms)
  boost::asio::thread_pool* verifier = nullptr;
  std::size_t pending_verifications = 0;

  // Connections, oldest first.
  std::map<std::uint64_t, std::weak_ptr<Connection>> connections;
  std::uint64_t next_id = 1;
  std::size_t max_connections = 16;
  std::chrono::milliseconds request_timeout = kRequestTimeout;

  // Accept errors.
  std::chrono::milliseconds backoff{0};
  std::uint64_t accept_failures = 0;
  std::uint64_t failures_unlogged = 0;
  std::optional<std::chrono::steady_clock::time_point> last_accept_log;

 private:
  void OnAccept(const boost::system::error_code& ec, tcp::socket socket);
  void AcceptFailed(const boost::system::error_code& ec);
  void StartSession(tcp::socket socket);
};

namespace {

using Core = HttpServer::Core;

// One request and its answer on one connection, plain or over TLS. Owns itself through the
// shared_ptr in its pending handlers.
template <class Stream>
class Session final : public Connection, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  Session(std::shared_ptr<Core> core, std::uint64_t id, Stream stream, std::string peer)
      : core_(std::move(core)),
        id_(id),
        stream_(std::move(stream)),
        peer_(std::move(peer)),
        verify_timer_(core_->io) {}
  ~Session() override { core_->Forget(id_); }

  void Start() {
    parser_.header_limit(kHeaderLimit);
    parser_.body_limit(0);
    beast::get_lowest_layer(stream_).expires_after(core_->request_timeout);
    auto self = this->shared_from_this();
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) return self->Abort();  // not TLS, or a certificate the CA did not sign
        self->cert_subject_ = CertificateSubject(self->stream_.native_handle());
        self->ReadHeader();
      });
    } else {
      ReadHeader();
    }
  }

  void Abort() override {
    verify_timer_.cancel();
    beast::get_lowest_layer(stream_).close();
  }

 private:
  using Headers = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  void ReadHeader() {
    auto self = this->shared_from_this();
    http::async_read_header(stream_, buffer_, parser_,
                            [self](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    idle = false;
    if (ec == http::error::header_limit) {
      return Respond(http::status::request_header_fields_too_large, "request header larger than 8 KiB\n");
    }
    if (ec == http::error::body_limit) {
      // The request line and header were read before the announced body was found too large.
      const http::verb method = parser_.get().method();
      if (method != http::verb::get && method != http::verb::head) return MethodNotAllowed();
      return Respond(http::status::payload_too_large, "no request body is accepted here\n");
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return Abort();
    if (ec && ec.category() == beast::http::make_error_code(http::error::bad_method).category()) {
      return Respond(http::status::bad_request, "malformed request: " + ec.message() + "\n");
    }
    if (ec) return Abort();  // timeout, reset, TLS failure: nobody to answer
    const auto& req = parser_.get();
    head_ = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !head_) return MethodNotAllowed();
    if (parser_.chunked() || parser_.content_length().value_or(0) > 0) {
      return Respond(http::status::payload_too_large, "no request body is accepted here\n");
    }
    const std::size_t hosts = req.count(http::field::host);
    if (hosts > 1 || (hosts == 0 && req.version() >= 11)) {
      return Respond(http::status::bad_request, "malformed request: one Host header is required\n");
    }
    if (core_->check_host && !core_->HostAllowed(View(req[http::field::host]))) {
      return Respond(http::status::misdirected_request,
                     "this server answers only to its own address or localhost in Host\n");
    }
    if (core_->tls) return Authenticate();
    Route();
  }

  void MethodNotAllowed() {
    Respond(http::status::method_not_allowed, "only GET and HEAD\n", {{"Allow", "GET, HEAD"}});
  }

  // --- authentication (HTTPS only) ---

  void Authenticate() {
    if (!cert_subject_.empty()) {
      core_->AuditLogin(cert_subject_, peer_, "certificate");
      return Route();
    }
    if (core_->users_file.empty()) {
      return Respond(http::status::forbidden,
                     "a client certificate signed by the CA of http.tls.ca_file is required\n");
    }
    const std::int64_t retry_ms = core_->limiter.RetryAfterMs(peer_, core_->MonoMs());
    if (retry_ms > 0) {
      const std::string retry_s = std::to_string((retry_ms + 999) / 1000);
      return Respond(http::status::too_many_requests,
                     "too many failed logins from this address; retry in " + retry_s + " s\n",
                     {{"Retry-After", retry_s}});
    }
    auto creds = ParseBasicAuthorization(View(parser_.get()[http::field::authorization]));
    if (!creds) return Challenge("authentication required\n");
    user_ = std::move(creds->first);
    core_->RefreshUsers();
    key_ = core_->CacheKey(user_, creds->second);
    if (!key_.empty()) {
      auto it = core_->verified.find(key_);
      if (it != core_->verified.end() && it->second > core_->MonoMs()) {
        core_->AuditLogin(user_, peer_, "password");
        return Route();
      }
    }
    if (core_->verifier == nullptr || core_->users.empty() ||
        core_->pending_verifications >= kMaxPendingVerifications) {
      return Respond(http::status::service_unavailable, "busy checking passwords; retry shortly\n",
                     {{"Retry-After", "1"}});
    }
    // An unknown user costs the same time as a known one: check against some real hash.
    const HttpUser* user = nullptr;
    for (const HttpUser& u : core_->users) {
      if (u.name == user_) user = &u;
    }
    known_user_ = user != nullptr;
    const std::string hash = known_user_ ? user->hash : core_->users.front().hash;
    ++core_->pending_verifications;
    // The session stays alive through this wait; the worker holds only a weak reference.
    verify_timer_.expires_after(kVerifyTimeout);
    auto self = this->shared_from_this();
    verify_timer_.async_wait([self](beast::error_code) { self->OnVerified(); });
    std::weak_ptr<Session> weak = self;
    auto ex = core_->io.get_executor();
    std::string password = std::move(creds->second);
    boost::asio::post(*core_->verifier, [weak, ex, password, hash]() mutable {
      const bool ok = VerifyPassword(password, hash);
      std::fill(password.begin(), password.end(), '\0');
      boost::asio::post(ex, [weak, ok] {
        if (auto s = weak.lock()) {
          s->verified_ = ok;
          s->verify_timer_.cancel();
        }
      });
    });
  }

  void OnVerified() {
    --core_->pending_verifications;
    if (!beast::get_lowest_layer(stream_).socket().is_open()) return;  // aborted meanwhile
    if (!verified_) {
      return Respond(http::status::service_unavailable, "password check timed out; retry\n",
                     {{"Retry-After", "1"}});
    }
    if (*verified_ && known_user_) {
      if (core_->verified.size() >= kMaxRemembered) core_->verified.clear();
      if (!key_.empty()) core_->verified[key_] = core_->MonoMs() + kVerifiedTtlMs;
      core_->AuditLogin(user_, peer_, "password");
      return Route();
    }
    const bool locked = core_->limiter.RecordFailure(peer_, core_->MonoMs());
    const char* reason = known_user_ ? "wrong password" : "unknown user";
    spdlog::warn("http: failed login from {} ({})", peer_, reason);
    core_->Audit("login", user_, JsonObject({{"result", "failed"}, {"address", peer_}, {"reason", reason}}));
    if (locked) {
      spdlog::warn("http: {} failed logins within a minute from {}: refusing it for a minute", 5, peer_);
      core_->Audit("login", user_,
                   JsonObject({{"result", "locked_out"}, {"address", peer_},
                               {"reason", "5 failed logins within a minute"}}));
    }
    Challenge("wrong user name or password\n");
  }

  void Challenge(std::string body) {
    Respond(http::status::unauthorized, std::move(body),
            {{"WWW-Authenticate", "Basic realm=\"vitalgate\", charset=\"UTF-8\""}});
  }

  // --- the endpoints ---

  void Route() {
    const std::string_view target = View(parser_.get().target());
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/") {
      return Respond(http::status::ok, StatusHtml(core_->Snapshot()),
                     {{"Content-Type", "text/html; charset=utf-8"},
                      {"Content-Security-Policy",
                       "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                       "form-action 'none'; frame-ancestors 'none'"},
                      {"X-Frame-Options", "DENY"},
                      {"Referrer-Policy", "no-referrer"}});
    }
    if (path == "/api/status") {
      return Respond(http::status::ok, StatusJson(core_->Snapshot()),
                     {{"Content-Type", "application/json"}});
    }
    if (path == "/healthz") {
      int code = 200;
      std::string body = HealthJson(core_->Snapshot(), &core_->stats, &code);
      return Respond(static_cast<http::status>(code), std::move(body),
                     {{"Content-Type", "application/json"}});
    }
    if (path == "/metrics") {
      return Respond(http::status::ok, MetricsText(core_->Snapshot(), core_->stats),
                     {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}});
    }
    Respond(http::status::not_found, "not found; try /, /api/status, /healthz or /metrics\n");
  }

  // --- answering and closing ---

  void Respond(http::status status, std::string body, Headers headers = {}) {
    idle = false;
    verify_timer_.cancel();
    response_.version(11);
    response_.result(status);
    response_.set(http::field::server, "vitalgate");
    response_.set(http::field::content_type, "text/plain; charset=utf-8");
    response_.set(http::field::cache_control, "no-store");
    response_.set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : headers) {
      response_.set(beast::string_view(name.data(), name.size()), beast::string_view(value.data(), value.size()));
    }
    response_.keep_alive(false);
    response_.body() = std::move(body);
    response_.prepare_payload();
    serializer_.emplace(response_);
    beast::get_lowest_layer(stream_).expires_after(core_->request_timeout);
    auto self = this->shared_from_this();
    auto done = [self](beast::error_code ec, std::size_t) {
      if (ec) return self->Abort();
      self->Finish();
    };
    if (head_) {
      http::async_write_header(stream_, *serializer_, std::move(done));
    } else {
      http::async_write(stream_, *serializer_, std::move(done));
    }
  }

  // Closes gracefully: what the client still sends (an unread body, the rest of a header) is
  // read and dropped for a moment, so that the kernel does not answer it with a reset that
  // could destroy our answer before the client has read it.
  void Finish() {
    auto self = this->shared_from_this();
    beast::get_lowest_layer(stream_).expires_after(kLingerTimeout);
    if constexpr (kTls) {
      stream_.async_shutdown([self](beast::error_code) { self->Abort(); });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      Drain();
    }
  }

  void Drain() {
    auto self = this->shared_from_this();
    stream_.async_read_some(boost::asio::buffer(drain_), [self](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ >= kLingerBytes) return self->Abort();
      self->Drain();
    });
  }

  std::shared_ptr<Core> core_;
  std::uint64_t id_;
  Stream stream_;
  std::string peer_;
  beast::flat_buffer buffer_{kHeaderLimit};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  bool head_ = false;
  std::string cert_subject_;
  std::string user_;
  std::string key_;
  bool known_user_ = false;
  std::optional<bool> verified_;
  boost::asio::steady_timer verify_timer_;
  std::array<char, 4096> drain_{};
  std::size_t drained_ = 0;
};

}  // namespace

// --- Core -----------------------------------------------------------------------------------------

void HttpServer::Core::Accept() {
  auto self = shared_from_this();
  acceptor.async_accept([self](const boost::system::error_code& ec, tcp::socket socket) {
    self->OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Core::OnAccept(const boost::system::error_code& ec, tcp::socket socket) {
  if (stopped || !acceptor.is_open()) return;
  if (ec) return AcceptFailed(ec);
  backoff = 0ms;
  if (connections.size() >= max_connections && !EvictOldestIdle()) {
    boost::system::error_code ignored;
    socket.close(ignored);  // every slot is busy answering: this one has to try again
  } else {
    StartSession(std::move(socket));
  }
  Accept();
}

void HttpServer::Core::AcceptFailed(const boost::system::error_code& ec) {
  ++accept_failures;
  namespace errc = boost::system::errc;
  if (ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
      ec == errc::no_buffer_space || ec == errc::not_enough_memory) {
    EvictOldestIdle();  // give a descriptor back; the client of that one was only waiting
  }
  backoff = backoff == 0ms ? std::chrono::milliseconds(kBackoffMin)
                           : std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
  ++failures_unlogged;
  const auto now = std::chrono::steady_clock::now();
  if (!last_accept_log || now - *last_accept_log >= kAcceptLogInterval) {
    spdlog::error("http: accepting a connection failed: {} ({} time(s) since the last message); "
                  "retrying in {} ms",
                  ec.message(), failures_unlogged, backoff.count());
    failures_unlogged = 0;
    last_accept_log = now;
  }
  backoff_timer.expires_after(backoff);
  auto self = shared_from_this();
  backoff_timer.async_wait([self](const boost::system::error_code& wait_ec) {
    if (wait_ec || self->stopped || !self->acceptor.is_open()) return;
    self->Accept();
  });
}

void HttpServer::Core::StartSession(tcp::socket socket) {
  boost::system::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string address = peer.address().to_string();
  const std::uint64_t id = next_id++;
  if (tls) {
    auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
        shared_from_this(), id, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls),
        std::move(address));
    connections[id] = s;
    s->Start();
  } else {
    auto s = std::make_shared<Session<beast::tcp_stream>>(
        shared_from_this(), id, beast::tcp_stream(std::move(socket)), std::move(address));
    connections[id] = s;
    s->Start();
  }
}

bool HttpServer::Core::EvictOldestIdle() {
  for (auto it = connections.begin(); it != connections.end();) {
    auto c = it->second.lock();
    if (!c) {
      it = connections.erase(it);
      continue;
    }
    if (c->idle) {
      connections.erase(it);
      c->Abort();
      return true;
    }
    ++it;
  }
  return false;
}

void HttpServer::Core::Stop() {
  stopped = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  backoff_timer.cancel();
  auto all = std::move(connections);
  connections.clear();
  for (auto& [id, weak] : all) {
    if (auto c = weak.lock()) c->Abort();
  }
}

bool HttpServer::Core::HostAllowed(std::string_view host_header) const {
  const std::string h = Lower(host_header);
  std::string name;
  std::string port;
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    if (close == std::string::npos) return false;
    name = h.substr(1, close - 1);
    const std::string rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else {
    const auto colon = h.find(':');
    name = h.substr(0, colon);
    if (colon != std::string::npos) {
      port = h.substr(colon + 1);
      if (port.find(':') != std::string::npos) return false;  // an IPv6 address needs brackets
    }
  }
  unsigned long p = 80;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
    p = std::stoul(port);
  }
  if (p != listen_port) return false;
  if (name == "localhost") return true;
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(name, ec);
  return !ec && ip == listen_ip;
}

void HttpServer::Core::RefreshUsers() {
  const std::int64_t now = MonoMs();
  if (users_file.empty() || (users_checked_ms != 0 && now - users_checked_ms < 1000)) return;
  users_checked_ms = now;
  const auto stamp = Stamp(users_file);
  if (stamp == users_stamp) return;
  auto loaded = LoadUsersFile(users_file);
  users_stamp = stamp;
  if (!loaded.ok()) {
    spdlog::error("http: keeping the previous users: {}", loaded.status().message());
    return;
  }
  users = std::move(*loaded);
  verified.clear();
  ++users_generation;
  spdlog::info("http: {} user(s) from {}", users.size(), users_file);
}

std::string HttpServer::Core::CacheKey(const std::string& user, const std::string& password) const {
  if (!cache_usable) return "";
  std::string data = std::to_string(users_generation);
  data += '\0';
  data += user;
  data += '\0';
  data += password;
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (::HMAC(::EVP_sha256(), cache_key.data(), static_cast<int>(cache_key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len) == nullptr) {
    return "";
  }
  std::fill(data.begin(), data.end(), '\0');
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

void HttpServer::Core::AuditLogin(const std::string& actor, const std::string& address, const char* method) {
  const std::string key = actor + '\n' + address;
  const std::int64_t now = MonoMs();
  auto it = audited_logins.find(key);
  if (it != audited_logins.end() && now - it->second < kLoginAuditEveryMs) return;
  if (audited_logins.size() >= kMaxRemembered) audited_logins.clear();
  audited_logins[key] = now;
  spdlog::info("http: {} logged in from {} ({})", actor, address, method);
  Audit("login", actor, JsonObject({{"result", "ok"}, {"address", address}, {"method", method}}));
}

// --- HttpServer -----------------------------------------------------------------------------------

HttpServer::HttpServer(boost::asio::io_context& io, const GatewayStats& stats, const Clock& clock,
                       HealthInfo info, const StatusSource* status, HttpAuditFn on_audit)
    : core_(std::make_shared<Core>(io, stats, clock, std::move(info), status, std::move(on_audit))),
      verifier_(std::make_unique<boost::asio::thread_pool>(1)) {
  core_->verifier = verifier_.get();
}

HttpServer::~HttpServer() {
  core_->Stop();
  core_->verifier = nullptr;
  verifier_->stop();
  verifier_->join();
}

Status CheckHttpAccess(const config::HttpConfig& http) {
  if (http.tls) {
    auto ctx = MakeTlsContext(*http.tls);
    if (!ctx.ok()) return ctx.status();
  }
  if (!http.users_file.empty()) {
    auto users = LoadUsersFile(http.users_file);
    if (!users.ok()) return users.status();
  }
  return Status::Ok();
}

Status HttpServer::Listen(const std::string& address) {
  config::HttpConfig http;
  http.listen = address;
  return Listen(http);
}

Status HttpServer::Listen(const config::HttpConfig& http) {
  const std::string& address = http.listen;
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("http.listen: expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port_text = address.substr(colon + 1);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(host, ec);
  if (ec || port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos || std::stoul(port_text) > 65535) {
    return InvalidArgument("http.listen: \"" + address + "\" is not an IP address and port");
  }
  Core& c = *core_;
  if (!ip.is_loopback() && !http.tls) {
    return InvalidArgument("http.listen: \"" + address +
                           "\" is beyond loopback: set http.tls and http.users_file or "
                           "http.tls.ca_file, so that every request is encrypted and authenticated");
  }
  if (http.tls) {
    if (http.users_file.empty() && http.tls->ca_file.empty()) {
      return InvalidArgument("http.tls: set http.users_file or http.tls.ca_file (who may connect)");
    }
    auto ctx = MakeTlsContext(*http.tls);
    if (!ctx.ok()) return ctx.status();
    c.tls = std::move(*ctx);
  }
  if (!http.users_file.empty()) {
    if (!http.tls) return InvalidArgument("http.users_file: passwords are accepted only over HTTPS (http.tls)");
    auto users = LoadUsersFile(http.users_file);
    if (!users.ok()) return users.status();
    c.users_file = http.users_file;
    c.users = std::move(*users);
    c.users_stamp = Stamp(http.users_file);
    c.users_checked_ms = c.MonoMs();
  }
  c.check_host = !http.tls;
  c.listen_ip = ip;

  // Never let connections take more than a quarter of the descriptors the process may open.
  rlimit nofile{};
  std::size_t cap = static_cast<std::size_t>(std::max(2, http.max_connections));
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    cap = std::min<std::size_t>(cap, std::max<std::size_t>(2, static_cast<std::size_t>(nofile.rlim_cur / 4)));
  }
  c.max_connections = cap;

  const tcp::endpoint ep(ip, static_cast<unsigned short>(std::stoul(port_text)));
  c.acceptor.open(ep.protocol(), ec);
  if (!ec) c.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) c.acceptor.bind(ep, ec);
  if (!ec) c.acceptor.listen(kListenBacklog, ec);
  if (ec) return Unavailable("http.listen: " + address + ": " + ec.message());
  c.listen_port = c.acceptor.local_endpoint(ec).port();
  spdlog::info("http: listening on {} ({}, at most {} connections)", address,
               c.tls ? (c.users.empty() ? "HTTPS, client certificates"
                                         : c.tls && !http.tls->ca_file.empty()
                                               ? "HTTPS, client certificates or passwords"
                                               : "HTTPS, passwords")
                     : "HTTP, loopback only",
               c.max_connections);
  c.Accept();
  return Status::Ok();
}

void HttpServer::Stop() { core_->Stop(); }

unsigned short HttpServer::port() const { return core_->listen_port; }
std::uint64_t HttpServer::accept_failures() const { return core_->accept_failures; }
std::size_t HttpServer::connections() const { return core_->connections.size(); }
std::size_t HttpServer::max_connections() const { return core_->max_connections; }

void HttpServer::set_request_timeout(std::chrono::milliseconds timeout) {
  core_->request_timeout = timeout;
}

std::string HttpServer::HealthJson(int* http_status) const {
  return vg::HealthJson(core_->Snapshot(), &core_->stats, http_status);
}

std::string HttpServer::MetricsText() const { return vg::MetricsText(core_->Snapshot(), core_->stats); }

}  // namespace vg
