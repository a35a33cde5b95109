// `vitalgate status` (the status of a running gateway, from its /api/status) and
// `vitalgate passwd` (users of HTTP Basic for the local endpoints).

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vitalgate/app/cli.h"
#include "vitalgate/app/http_auth.h"
#include "vitalgate/app/status_views.h"
#include "vitalgate/config/config.h"
#include "vitalgate/core/net.h"
#include "vitalgate/forward/envelope.h"

namespace vg {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;

constexpr auto kStepTimeout = std::chrono::seconds(10);

const char* kStatusUsage =
    "usage: vitalgate status [--url URL] [--json] [--ca FILE] [--user NAME --password-file FILE]\n"
    "  --url URL             the gateway's http.listen (default http://127.0.0.1:9102);\n"
    "                        https://HOST:PORT needs --ca\n"
    "  --json                print /api/status as it came\n"
    "  --ca FILE             CA bundle that signed the gateway's http.tls.cert_file\n"
    "  --user NAME           HTTP Basic user (HTTPS only), password from --password-file\n";

const char* kPasswdUsage =
    "usage: vitalgate passwd --file FILE [--scheme yescrypt|bcrypt] USER\n"
    "  sets USER's password in FILE (http.users_file), read from standard input, or asked\n"
    "  twice without echo on a terminal; the file is written with mode 0600\n";

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
};

Result<Url> ParseUrl(const std::string& text) {
  Url url;
  std::string rest;
  if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else if (text.rfind("https://", 0) == 0) {
    url.tls = true;
    rest = text.substr(8);
  } else {
    return InvalidArgument("status: --url: expected http://HOST:PORT or https://HOST:PORT, got \"" + text + "\"");
  }
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("status: --url: unclosed [ in \"" + text + "\"");
    url.host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() == ':') url.port = rest.substr(1);
  } else {
    const auto colon = rest.find(':');
    url.host = rest.substr(0, colon);
    if (colon != std::string::npos) url.port = rest.substr(colon + 1);
  }
  if (url.port.empty()) url.port = url.tls ? "443" : "80";
  if (url.host.empty() || url.port.size() > 5 || url.port.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("status: --url: expected http://HOST:PORT or https://HOST:PORT, got \"" + text + "\"");
  }
  return url;
}

// Runs one asynchronous step to completion or until kStepTimeout.
template <class Start>
beast::error_code RunStep(boost::asio::io_context& io, Start&& start) {
  beast::error_code result = boost::asio::error::would_block;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run_for(kStepTimeout);
  if (result == boost::asio::error::would_block) return beast::error::timeout;
  return result;
}

struct FetchOptions {
  std::string ca_file;
  std::string user;
  std::string password;
};

Result<std::pair<int, std::string>> Fetch(const Url& url, const std::string& target, const FetchOptions& opt) {
  boost::asio::io_context io;
  const std::string where = std::string(url.tls ? "https://" : "http://") +
                            (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) +
                            ":" + url.port;
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    return Unavailable("status: " + where + ": " + what + ": " + ec.message());
  };
  tcp::resolver resolver(io);
  tcp::resolver::results_type endpoints;
  beast::error_code ec = RunStep(io, [&](auto handler) {
    resolver.async_resolve(url.host, url.port, [&endpoints, handler](beast::error_code e, tcp::resolver::results_type r) mutable {
      endpoints = std::move(r);
      handler(e);
    });
  });
  if (ec) return fail("cannot resolve", ec);

  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, url.host.find(':') != std::string::npos ? "[" + url.host + "]:" + url.port
                                                                      : url.host + ":" + url.port);
  req.set(http::field::user_agent, "vitalgate-status/" VITALGATE_VERSION);
  req.set(http::field::accept, "application/json");
  if (!opt.user.empty()) {
    const std::string credentials = opt.user + ":" + opt.password;
    req.set(http::field::authorization,
            "Basic " + Base64Encode(std::span<const std::uint8_t>(
                           reinterpret_cast<const std::uint8_t*>(credentials.data()), credentials.size())));
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);

  auto exchange = [&](auto& stream) -> Status {
    ec = RunStep(io, [&](auto handler) { http::async_write(stream, req, handler); });
    if (ec) return fail("cannot send the request", ec);
    ec = RunStep(io, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
    if (ec) return fail("no valid answer", ec);
    return Status::Ok();
  };

  beast::tcp_stream tcp_stream(io);
  ec = RunStep(io, [&](auto handler) { tcp_stream.async_connect(endpoints, handler); });
  if (ec) return fail("cannot connect", ec);
  if (!url.tls) {
    VG_RETURN_IF_ERROR(exchange(tcp_stream));
  } else {
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx.load_verify_file(opt.ca_file, ec);
    if (ec) return InvalidArgument("status: --ca: " + opt.ca_file + ": " + ec.message());
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), ctx);
    SSL* handle = stream.native_handle();
    boost::system::error_code ip_ec;
    boost::asio::ip::make_address(url.host, ip_ec);
    if (ip_ec) ::SSL_set_tlsext_host_name(handle, url.host.c_str());  // SNI takes names only
    ::SSL_set_hostflags(handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (::SSL_set1_host(handle, url.host.c_str()) != 1) {
      return Internal("status: cannot set the expected server name");
    }
    ec = RunStep(io, [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); });
    if (ec) return fail("TLS handshake failed", ec);
    VG_RETURN_IF_ERROR(exchange(stream));
  }
  auto& res = parser.get();
  return std::make_pair(static_cast<int>(res.result_int()), std::move(res.body()));
}

std::string Field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j.at(key);
  return TerminalSafe(v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump());
}

double Number(const json& j, const char* key, double otherwise = 0) {
  return j.is_object() && j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : otherwise;
}

const json& List(const json& j, const char* key) {
  static const json kEmpty = json::array();
  return j.is_object() && j.contains(key) && j.at(key).is_array() ? j.at(key) : kEmpty;
}

// The terminal view of /api/status.
std::string Render(const json& s) {
  std::ostringstream out;
  const json& gw = s.value("gateway", json::object());
  const json& health = s.value("health", json::object());
  const bool ok = Field(health, "status") == "ok";
  out << Field(gw, "id") << " (site " << Field(gw, "site") << "), vitalgate " << Field(gw, "version")
      << ", up " << FormatAge(Number(gw, "uptime_s")) << ": " << (ok ? "ok" : "DEGRADED") << "\n";
  for (const json& r : List(health, "reasons")) {
    out << "  ! " << TerminalSafe(r.is_string() ? r.get<std::string>() : r.dump()) << "\n";
  }
  const json& backlog = s.value("backlog", json::object());
  out << "backlog: " << Number(backlog, "readings") << " readings, " << Number(backlog, "events")
      << " events, " << Number(backlog, "bytes") << " bytes\n";

  out << "\nalarms (" << List(s, "alarms").size() << "):\n";
  for (const json& a : List(s, "alarms")) {
    std::string ack = Field(a, "acknowledged_by");
    out << "  " << Field(a, "priority") << "  " << (Field(a, "patient").empty() ? "(none)" : Field(a, "patient"))
        << "  " << Field(a, "kind") << " " << Field(a, "what") << "  \"" << Field(a, "message") << "\"  "
        << FormatAge(Number(a, "age_s")) << (ack.empty() ? "  not acknowledged" : "  acknowledged by " + ack)
        << "\n";
  }
  out << "\ndevices (" << List(s, "devices").size() << "):\n";
  for (const json& d : List(s, "devices")) {
    const std::string patient = Field(d, "patient");
    const std::string location = Field(d, "location");
    out << "  " << Field(d, "id") << "  " << (patient.empty() ? "(no patient)" : patient)
        << (location.empty() ? "" : " [" + location + "]") << "  " << Field(d, "transport") << "  link "
        << Field(d, "link") << "  last reading "
        << (d.contains("last_reading_age_s") && d["last_reading_age_s"].is_number()
                ? FormatAge(Number(d, "last_reading_age_s")) + " ago"
                : std::string("never"));
    if (d.contains("battery_pct") && d["battery_pct"].is_number()) {
      out << "  battery " << Field(d, "battery_pct") << " %";
    }
    if (d.contains("rssi_dbm") && d["rssi_dbm"].is_number()) out << "  " << Field(d, "rssi_dbm") << " dBm";
    out << "  decode errors " << Field(d, "decode_errors");
    if (d.value("healthy", true) == false) out << "  PROBLEM";
    out << "\n";
  }
  out << "\ndestinations:\n";
  for (const json& d : List(s, "destinations")) {
    out << "  " << Field(d, "name") << " (" << Field(d, "type") << ") " << Field(d, "target") << "  "
        << (d.value("connected", false) ? "up" : "down: " + Field(d, "last_error")) << "  backlog "
        << Field(d, "backlog_readings") << " readings, " << Field(d, "backlog_events") << " events";
    if (d.contains("oldest_unsent_age_s") && d["oldest_unsent_age_s"].is_number()) {
      out << ", oldest " << FormatAge(Number(d, "oldest_unsent_age_s"));
    }
    out << "\n";
  }
  if (!List(s, "certificates").empty()) {
    out << "\ncertificates:\n";
    for (const json& c : List(s, "certificates")) {
      const double left = Number(c, "expires_in_s");
      out << "  " << Field(c, "role") << "  " << Field(c, "subject") << "  expires " << Field(c, "not_after")
          << (left >= 0 ? " (in " + FormatAge(left) + ")" : " (EXPIRED)")
          << (c.value("rejected", false) ? "  REJECTED" : "") << "\n";
    }
  }
  if (!List(s, "audit").empty()) {
    out << "\nrecent audit entries:\n";
    for (const json& a : List(s, "audit")) {
      out << "  " << Field(a, "ts") << "  " << Field(a, "kind") << "  " << Field(a, "actor") << "  "
          << Field(a, "detail") << "\n";
    }
  }
  return out.str();
}

bool TakeValue(std::vector<std::string>& args, std::size_t& i, std::string& value) {
  if (i + 1 >= args.size()) return false;
  value = args[++i];
  return true;
}

Result<std::string> ReadFirstLine(const std::string& path, const char* what) {
  VG_RETURN_IF_ERROR(CheckFile(path, FileCheck::kSecret, what));
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) return InvalidArgument(std::string(what) + ": " + path + ": empty");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int CommandStatus(const std::vector<std::string>& argv) {
  std::vector<std::string> args = argv;
  std::string url_text = "http://127.0.0.1:9102";
  bool raw = false;
  FetchOptions opt;
  std::string password_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool ok = true;
    if (a == "--url") {
      ok = TakeValue(args, i, url_text);
    } else if (a == "--json") {
      raw = true;
    } else if (a == "--ca") {
      ok = TakeValue(args, i, opt.ca_file);
    } else if (a == "--user") {
      ok = TakeValue(args, i, opt.user);
    } else if (a == "--password-file") {
      ok = TakeValue(args, i, password_file);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kStatusUsage, stdout);
      return 0;
    } else {
      std::fputs(kStatusUsage, stderr);
      return PrintError(InvalidArgument("status: unexpected argument \"" + a + "\""));
    }
    if (!ok) return PrintError(InvalidArgument("status: " + a + " needs a value"));
  }
  auto url = ParseUrl(url_text);
  if (!url.ok()) return PrintError(url.status());
  if (url->tls && opt.ca_file.empty()) {
    return PrintError(InvalidArgument("status: --ca FILE is required with https:// (the CA of http.tls.cert_file)"));
  }
  if (opt.user.empty() != password_file.empty()) {
    return PrintError(InvalidArgument("status: --user and --password-file go together"));
  }
  if (!opt.user.empty() && !url->tls) {
    return PrintError(InvalidArgument("status: --user: passwords are sent only over https://"));
  }
  if (!password_file.empty()) {
    auto pw = ReadFirstLine(password_file, "status: --password-file");
    if (!pw.ok()) return PrintError(pw.status());
    opt.password = std::move(*pw);
  }
  if (!url->tls && !IsLoopbackHost(url->host)) {
    return PrintError(InvalidArgument("status: --url: plain http:// only to 127.0.0.1, ::1 or localhost; "
                                      "use https:// with --ca"));
  }
  auto fetched = Fetch(*url, "/api/status", opt);
  if (!fetched.ok()) return PrintError(fetched.status());
  const auto& [code, body] = *fetched;
  if (code != 200) {
    std::string first = body.substr(0, body.find('\n'));
    return PrintError(Unavailable("status: " + url_text + " answered " + std::to_string(code) + ": " +
                                  TerminalSafe(first.substr(0, 200))));
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return PrintError(Unavailable("status: " + url_text + "/api/status: the answer is not a JSON object"));
  }
  if (raw) {
    std::fputs(body.c_str(), stdout);
    return 0;
  }
  std::string text;
  try {
    text = Render(doc);
  } catch (const json::exception& e) {
    return PrintError(Unavailable("status: unexpected /api/status document: " + std::string(e.what())));
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

namespace {

// Reads a password: from a terminal twice without echo, else the first line of stdin.
Result<std::string> ReadPassword(const std::string& user) {
  auto strip = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  };
  if (::isatty(STDIN_FILENO) == 0) {
    std::string line;
    if (!std::getline(std::cin, line)) return InvalidArgument("passwd: no password on standard input");
    return strip(line);
  }
  termios saved{};
  if (::tcgetattr(STDIN_FILENO, &saved) != 0) return Unavailable(std::string("passwd: tcgetattr: ") + std::strerror(errno));
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
    return Unavailable(std::string("passwd: cannot turn echo off: ") + std::strerror(errno));
  }
  std::string first, second;
  std::fprintf(stderr, "New password for %s: ", user.c_str());
  const bool got_first = static_cast<bool>(std::getline(std::cin, first));
  std::fprintf(stderr, "Again: ");
  const bool got_second = got_first && static_cast<bool>(std::getline(std::cin, second));
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  if (!got_second) return InvalidArgument("passwd: no password entered");
  if (strip(first) != strip(second)) return InvalidArgument("passwd: the two passwords differ");
  return strip(first);
}

Status WriteSecretFile(const std::string& path, const std::string& text) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Unavailable("passwd: " + path + ": cannot create a file beside it: " + std::strerror(errno));
  struct stat old {};
  bool ok = ::fchmod(fd, 0600) == 0;
  if (ok && ::stat(path.c_str(), &old) == 0) {
    // Keep the owner (e.g. the service user) of the file being replaced.
    ok = ::fchown(fd, old.st_uid, old.st_gid) == 0 || ::geteuid() != 0;
  }
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : saved_errno;
    ::unlink(tmp.c_str());
    return Unavailable("passwd: " + path + ": cannot write: " + std::strerror(e));
  }
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace

int CommandPasswd(const std::vector<std::string>& argv) {
  std::vector<std::string> args = argv;
  std::string file;
  std::string scheme = "yescrypt";
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--file" || a == "--scheme") {
      std::string value;
      if (!TakeValue(args, i, value)) return PrintError(InvalidArgument("passwd: " + a + " needs a value"));
      (a == "--file" ? file : scheme) = value;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kPasswdUsage, stdout);
      return 0;
    } else if (a.rfind("--", 0) == 0) {
      std::fputs(kPasswdUsage, stderr);
      return PrintError(InvalidArgument("passwd: unknown option " + a));
    } else {
      positional.push_back(a);
    }
  }
  if (file.empty() || positional.size() != 1) {
    std::fputs(kPasswdUsage, stderr);
    return 2;
  }
  const std::string& user = positional[0];
  if (!IsValidUserName(user)) {
    return PrintError(InvalidArgument("passwd: user name \"" + TerminalSafe(user) + "\" must be 1-64 of [A-Za-z0-9._@-]"));
  }
  if (scheme != "yescrypt" && scheme != "bcrypt") {
    return PrintError(InvalidArgument("passwd: --scheme: expected yescrypt or bcrypt, got \"" + scheme + "\""));
  }
  std::string existing;
  bool had_user = false;
  {
    std::ifstream in(file, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      existing = ss.str();
      auto parsed = ParseUsersFile(existing, file);
      if (!parsed.ok()) return PrintError(parsed.status());
      for (const HttpUser& u : *parsed) had_user = had_user || u.name == user;
    } else if (errno != ENOENT) {
      return PrintError(Unavailable("passwd: " + file + ": " + std::strerror(errno)));
    }
  }
  auto password = ReadPassword(user);
  if (!password.ok()) return PrintError(password.status());
  if (password->empty()) return PrintError(InvalidArgument("passwd: the password must not be empty"));
  if (scheme == "bcrypt" && password->size() > 72) {
    return PrintError(InvalidArgument("passwd: bcrypt uses only the first 72 bytes of a password; "
                                      "use a shorter one or --scheme yescrypt"));
  }
  auto hash = HashPassword(*password, scheme);
  std::fill(password->begin(), password->end(), '\0');
  if (!hash.ok()) return PrintError(hash.status());
  const Status written = WriteSecretFile(file, WithUser(existing, HttpUser{user, *hash}));
  if (!written.ok()) return PrintError(written);
  std::fprintf(stderr, "vitalgate: passwd: %s %s in %s\n", had_user ? "changed the password of" : "added",
               user.c_str(), file.c_str());
  return 0;
}

}  // namespace vg
