// The FHIR link against the test FHIR server (tests/integration/fhir_server.py) over TLS on
// 127.0.0.1, with certificates made for each run by the openssl command line tool.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/fhir/samples.h"
#include "vitalgate/forward/fhir.h"

namespace vg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

int Run(const std::string& command) { return std::system(command.c_str()); }

// A CA, a server certificate for 127.0.0.1/localhost, one for another name, a client certificate.
class Certs {
 public:
  Certs() {
    char tmpl[] = "/tmp/vg-fhir-link-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    const std::string d = dir_;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    ok_ = Run("cd " + d + " && openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null") == 0;
    for (const auto& [name, san] : {std::pair<std::string, std::string>{"server", "IP:127.0.0.1,DNS:localhost"},
                                    {"other", "DNS:other.example"},
                                    {"client", "DNS:ward7-gw1"}}) {
      ok_ = ok_ &&
            Run("cd " + d + " && openssl req" + ec + "-keyout " + name + ".key -out " + name +
                ".csr -subj /CN=" + name + " 2>/dev/null && printf 'subjectAltName=" + san + "' > " + name +
                ".ext && openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out " +
                name + ".pem -days 2 -extfile " + name + ".ext 2>/dev/null && chmod 600 " + name + ".key") == 0;
    }
    std::ofstream(d + "/token") << "s3cret-token\n";
    ::chmod((d + "/token").c_str(), 0600);
    std::ofstream(d + "/open-token") << "s3cret-token\n";
    ::chmod((d + "/open-token").c_str(), 0644);
  }
  ~Certs() { Run("rm -rf " + dir_); }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  bool ok_ = false;
};

// The test server as a child process, driven over its stdin/stdout.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args) {
    int in[2];
    int out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      std::vector<char*> argv;
      static std::string python = "/usr/bin/python3";
      static std::string script = VG_FHIR_SERVER;
      argv.push_back(python.data());
      argv.push_back(script.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    const std::string first = ReadLine(10s);
    if (first.rfind("PORT ", 0) == 0) port_ = std::stoi(first.substr(5));
  }
  ~ServerProcess() {
    if (to_ >= 0) ::close(to_);
    if (pid_ > 0) {
      for (int i = 0; i < 50; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        ::usleep(100000);
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    if (from_ >= 0) ::close(from_);
  }
  int port() const { return port_; }

  std::string Command(const std::string& line) {
    const std::string l = line + "\n";
    if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return {};
    return ReadLine(10s);
  }
  json Received() { return json::parse(Command("received")); }
  json Store() { return json::parse(Command("store")); }
  void Mode(const json& mode) { ASSERT_EQ(Command("mode " + mode.dump()), "OK"); }

 private:
  std::string ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return {};
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
      char buf[65536];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n <= 0) return {};
      buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int port_ = 0;
  std::string buffer_;
};

class FhirLinkTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs_.ok()) << "openssl could not make the test certificates"; }

  std::unique_ptr<ServerProcess> StartServer(const std::string& cert = "server", bool client_ca = false,
                                             bool token = true) {
    std::vector<std::string> args{"--cert", certs_.Path(cert + ".pem"), "--key", certs_.Path(cert + ".key")};
    if (client_ca) {
      args.push_back("--client-ca");
      args.push_back(certs_.Path("ca.pem"));
    }
    if (token) {
      args.push_back("--token");
      args.push_back("s3cret-token");
    }
    auto s = std::make_unique<ServerProcess>(args);
    EXPECT_GT(s->port(), 0) << "the test FHIR server did not start";
    return s;
  }

  json Options(int port, const std::string& host = "127.0.0.1") {
    return {{"url", "https://" + host + ":" + std::to_string(port) + "/fhir"},
            {"tls", {{"ca_file", certs_.Path("ca.pem")}}},
            {"token_file", certs_.Path("token")},
            {"patient_identifier_system", "urn:oid:1.2.3"},
            {"patient_reference", "identifier"},
            {"timeout_s", 5}};
  }

  std::unique_ptr<RequestLink> Make(const json& options) {
    auto link = FhirDestination().make(options);
    EXPECT_TRUE(link.ok()) << link.status().message();
    return link.ok() ? std::move(*link) : nullptr;
  }

  DeliveryBatch Batch(const std::vector<OutboxRow>& rows, DeliveryBatch::Kind kind = DeliveryBatch::Kind::kReadings) {
    DeliveryBatch b;
    b.kind = kind;
    b.patient = "p-001";
    b.context = fhir::testing::SampleContext();
    for (const OutboxRow& r : rows) b.rows.push_back(&r);
    return b;
  }

  Certs certs_;
  const std::vector<OutboxRow> rows_{
      fhir::testing::Row(1, "p-001", fhir::testing::ReadingBody("r-1", "ox-1", "spo2", "97")),
      fhir::testing::Row(2, "p-001", fhir::testing::ReadingBody("r-2", "ox-1", "heart_rate", "72"))};
};

TEST_F(FhirLinkTest, DeliversATransactionAndAResendCreatesNothingTwice) {
  auto server = StartServer();
  auto link = Make(Options(server->port()));
  ASSERT_NE(link, nullptr);
  ASSERT_TRUE(link->Connect(5s).ok());
  for (int round = 0; round < 2; ++round) {
    const DeliveryOutcome out = link->Deliver(Batch(rows_), 5s);
    ASSERT_FALSE(out.failure) << out.failure->reason;
    ASSERT_EQ(out.rows.size(), 2u);
    for (const RowOutcome& r : out.rows) EXPECT_EQ(r.kind, RowOutcome::Kind::kDelivered) << r.reason;
  }
  const json received = server->Received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0]["path"], "/fhir");
  EXPECT_EQ(received[0]["bundle"]["type"], "transaction");
  EXPECT_EQ(received[0]["headers"]["Authorization"], "Bearer s3cret-token");
  EXPECT_EQ(received[0]["headers"]["Content-Type"], "application/fhir+json");
  const json store = server->Store();
  EXPECT_EQ(store["Observation"].size(), 2u);  // conditional create: the resend added nothing
  EXPECT_EQ(store["Device"].size(), 2u);       // the gateway and ox-1, updated in place
  // References between the entries were resolved to the stored Devices.
  for (const auto& [id, obs] : store["Observation"].items()) {
    EXPECT_EQ(obs["device"]["reference"].get<std::string>().rfind("Device/", 0), 0u);
  }
}

TEST_F(FhirLinkTest, AnEntryRefusedWith4xxRejectsOnlyItsRow) {
  auto server = StartServer();
  server->Mode({{"mode", "reject_entry"}, {"match", {{"code", "8867-4"}}}, {"text", "heart rate refused"}});
  auto link = Make(Options(server->port()));
  const DeliveryOutcome out = link->Deliver(Batch(rows_), 5s);  // connects on demand
  ASSERT_FALSE(out.failure) << out.failure->reason;
  EXPECT_EQ(out.rows[0].kind, RowOutcome::Kind::kDelivered);
  EXPECT_EQ(out.rows[1].kind, RowOutcome::Kind::kRejected);
  EXPECT_EQ(out.rows[1].reason, "HTTP 422: heart rate refused");
}

TEST_F(FhirLinkTest, A503WithRetryAfterIsALinkFailureWithThatDelay) {
  auto server = StartServer();
  server->Mode({{"mode", "unavailable"}, {"retry_after", 7}});
  auto link = Make(Options(server->port()));
  const DeliveryOutcome out = link->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(out.failure);
  ASSERT_TRUE(out.failure->retry_after);
  EXPECT_EQ(*out.failure->retry_after, 7000ms);
  server->Mode({{"mode", "throttle"}, {"retry_after", 2}});
  const DeliveryOutcome again = link->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(again.failure);
  EXPECT_EQ(again.failure->retry_after, std::optional<std::chrono::milliseconds>(2000ms));
}

TEST_F(FhirLinkTest, RetryAfterAsAnHttpDateIsTheTimeUntilThen) {
  auto http_date = [](std::time_t at) {
    std::tm tm{};
    ::gmtime_r(&at, &tm);
    char text[64];
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(text);
  };
  auto server = StartServer();
  auto link = Make(Options(server->port()));
  server->Mode({{"mode", "unavailable"}, {"retry_after", http_date(std::time(nullptr) + 120)}});
  const DeliveryOutcome later = link->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(later.failure);
  ASSERT_TRUE(later.failure->retry_after);
  // 120 s from when the date was written, less the time the request took.
  EXPECT_LE(*later.failure->retry_after, 120000ms);
  EXPECT_GE(*later.failure->retry_after, 100000ms);
  // A date already past: try again at once, not never.
  server->Mode({{"mode", "unavailable"}, {"retry_after", http_date(std::time(nullptr) - 3600)}});
  const DeliveryOutcome past = link->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(past.failure);
  EXPECT_EQ(past.failure->retry_after, std::optional<std::chrono::milliseconds>(0ms));
}

TEST_F(FhirLinkTest, ADroppedConnectionFailsAndTheNextDeliveryReconnects) {
  auto server = StartServer();
  auto link = Make(Options(server->port()));
  ASSERT_TRUE(link->Connect(5s).ok());
  server->Mode({{"mode", "drop"}});
  const DeliveryOutcome out = link->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(out.failure);
  server->Mode({{"mode", "ok"}});
  link->Close();
  const DeliveryOutcome next = link->Deliver(Batch(rows_), 5s);
  ASSERT_FALSE(next.failure) << next.failure->reason;
  EXPECT_EQ(next.rows[0].kind, RowOutcome::Kind::kDelivered);
}

TEST_F(FhirLinkTest, ASlowServerIsBoundedByTheTimeout) {
  auto server = StartServer();
  server->Mode({{"mode", "slow"}, {"delay_s", 5}});
  auto link = Make(Options(server->port()));
  ASSERT_TRUE(link->Connect(5s).ok());
  // The server answers after 5 s: a failure means the link gave up before the answer came.
  const DeliveryOutcome out = link->Deliver(Batch(rows_), 500ms);
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->reason.find("reading the answer"), std::string::npos)
      << out.failure->reason;
}

TEST_F(FhirLinkTest, TheServerMustBeTrustedAndNamedInItsCertificate) {
  auto other = StartServer("other");
  auto link = Make(Options(other->port()));
  const Status s = link->Connect(5s);
  EXPECT_FALSE(s.ok());  // certificate for other.example, URL names 127.0.0.1
  auto server = StartServer();
  json untrusted = Options(server->port());
  untrusted["tls"]["ca_file"] = certs_.Path("server.pem");  // not the issuing CA
  EXPECT_FALSE(Make(untrusted)->Connect(5s).ok());
  EXPECT_TRUE(Make(Options(server->port(), "localhost"))->Connect(5s).ok());
}

TEST_F(FhirLinkTest, MutualTlsPresentsTheClientCertificate) {
  auto server = StartServer("server", /*client_ca=*/true);
  auto without = Make(Options(server->port()));
  const DeliveryOutcome refused = without->Deliver(Batch(rows_), 5s);
  EXPECT_TRUE(refused.failure);
  json options = Options(server->port());
  options["tls"]["cert_file"] = certs_.Path("client.pem");
  options["tls"]["key_file"] = certs_.Path("client.key");
  const DeliveryOutcome out = Make(options)->Deliver(Batch(rows_), 5s);
  ASSERT_FALSE(out.failure) << out.failure->reason;
  EXPECT_EQ(out.rows[1].kind, RowOutcome::Kind::kDelivered);
}

TEST_F(FhirLinkTest, AWrongTokenIsALinkFailureNotARejection) {
  auto server = StartServer();
  json options = Options(server->port());
  std::ofstream(certs_.Path("wrong-token")) << "nope\n";
  ::chmod(certs_.Path("wrong-token").c_str(), 0600);
  options["token_file"] = certs_.Path("wrong-token");
  const DeliveryOutcome out = Make(options)->Deliver(Batch(rows_), 5s);
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->reason.find("HTTP 401"), std::string::npos);
}

TEST_F(FhirLinkTest, AnAlertIsOneTransaction) {
  auto server = StartServer();
  const fhir::testing::Sample s = fhir::testing::FindSample("alert-threshold-transaction");
  const DeliveryOutcome out = Make(Options(server->port()))->Deliver(Batch(s.rows, DeliveryBatch::Kind::kAlert), 5s);
  ASSERT_FALSE(out.failure) << out.failure->reason;
  EXPECT_EQ(out.rows[0].kind, RowOutcome::Kind::kDelivered);
  EXPECT_EQ(server->Store()["Flag"].size(), 1u);
}

TEST_F(FhirLinkTest, CheckRefusesUnsafeOrIncompleteOptions) {
  const auto check = FhirDestination().check;
  json plain = Options(1);
  plain["url"] = "http://ehr.example/fhir";
  plain.erase("tls");
  Status s = check(plain, "destinations[1]");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("destinations[1].url"), std::string::npos);
  plain["url"] = "http://127.0.0.1:8080/fhir";
  EXPECT_TRUE(check(plain, "destinations[1]").ok()) << check(plain, "destinations[1]").message();
  json no_tls = Options(1);
  no_tls.erase("tls");
  EXPECT_NE(check(no_tls, "d").message().find("d.tls"), std::string::npos);
  json bad_url = Options(1);
  bad_url["url"] = "ftp://x";
  EXPECT_NE(check(bad_url, "d").message().find("d.url"), std::string::npos);
  json bad_system = Options(1);
  bad_system["patient_identifier_system"] = "local ids";
  EXPECT_NE(check(bad_system, "d").message().find("d.patient_identifier_system"), std::string::npos);
  EXPECT_TRUE(check(Options(1), "d").ok()) << check(Options(1), "d").message();
  // A token file readable by others is refused when the link reads it.
  json open_token = Options(1);
  open_token["token_file"] = certs_.Path("open-token");
  const Status c = Make(open_token)->Connect(1s);
  EXPECT_FALSE(c.ok());
  EXPECT_NE(c.message().find("chmod 600"), std::string::npos);
}

}  // namespace
}  // namespace vg
