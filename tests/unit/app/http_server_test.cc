// The HTTP server on a real loopback socket: requests from plain POSIX sockets, the server's
// io_context on a thread of its own.
#include "vitalgate/app/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include "integration/ward_snapshot.h"

namespace vg {
namespace {

using namespace std::chrono_literals;

// A connected client socket with receive and send timeouts, so that no test waits forever.
class Client {
 public:
  explicit Client(unsigned short port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  void Send(std::string_view data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  // Everything until the server closes (or the 5 s timeout).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  std::string Exchange(std::string_view request) {
    Send(request);
    return ReadAll();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

int StatusCode(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string HeaderValue(const std::string& response, const std::string& name) {
  const auto end = response.find("\r\n\r\n");
  std::size_t pos = 0;
  while ((pos = response.find("\r\n", pos)) != std::string::npos && pos < end) {
    pos += 2;
    if (response.compare(pos, name.size() + 1, name + ":") == 0) {
      const auto eol = response.find("\r\n", pos);
      std::string v = response.substr(pos + name.size() + 1, eol - pos - name.size() - 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      return v;
    }
  }
  return "";
}

std::string Body(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(config::HttpConfig cfg = {},
             std::optional<std::chrono::milliseconds> request_timeout = {}) {
    if (cfg.listen.empty()) cfg.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(io_, stats_, clock_, HealthInfo{"gw", "site", "1"}, &source_);
    if (request_timeout) server_->set_request_timeout(*request_timeout);
    const Status s = server_->Listen(cfg);
    ASSERT_TRUE(s.ok()) << s.message();
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      std::promise<void> stopped;
      boost::asio::post(io_, [&] {
        server_->Stop();
        stopped.set_value();
      });
      stopped.get_future().wait_for(5s);
      work_.reset();
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }
  std::string Get(std::string_view target, std::string_view method = "GET", std::string_view extra = "") {
    Client c(port_);
    return c.Exchange(std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                      std::to_string(port_) + "\r\n" + std::string(extra) + "\r\n");
  }
  template <class T>
  T OnIo(std::function<T()> f) {
    std::promise<T> p;
    boost::asio::post(io_, [&] { p.set_value(f()); });
    return p.get_future().get();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  GatewayStats stats_;
  SimulatedClock clock_{testing::kWardNowMs};
  testing::FixedStatusSource source_{testing::MakeWardSnapshot()};
  std::unique_ptr<HttpServer> server_;
  unsigned short port_ = 0;
  std::thread thread_;
};

TEST_F(HttpServerTest, ServesEveryViewOfTheSnapshot) {
  Start();
  const std::string health = Get("/healthz");
  EXPECT_EQ(StatusCode(health), 503);
  EXPECT_NE(Body(health).find("\"device temp-3: disconnected\""), std::string::npos);
  EXPECT_EQ(HeaderValue(health, "Content-Type"), "application/json");
  const std::string page = Get("/");
  EXPECT_EQ(StatusCode(page), 200);
  EXPECT_EQ(HeaderValue(page, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(HeaderValue(page, "Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(Body(page), StatusHtml(testing::MakeWardSnapshot()));
  const std::string api = Get("/api/status?pretty=0");
  EXPECT_EQ(Body(api), StatusJson(testing::MakeWardSnapshot()));
  const std::string metrics = Get("/metrics");
  EXPECT_EQ(HeaderValue(metrics, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(Body(metrics).find("vitalgate_build_info{version=\"0.1.0\"} 1"), std::string::npos);
  EXPECT_EQ(StatusCode(Get("/nothing")), 404);
}

TEST_F(HttpServerTest, HeadAnswersHeadersWithLengthAndNoBody) {
  Start();
  const std::string get = Get("/");
  const std::string head = Get("/", "HEAD");
  EXPECT_EQ(StatusCode(head), 200);
  EXPECT_EQ(HeaderValue(head, "Content-Length"), std::to_string(Body(get).size()));
  EXPECT_EQ(Body(head), "");
  EXPECT_EQ(StatusCode(Get("/healthz", "HEAD")), 503);
}

TEST_F(HttpServerTest, RefusesWhatItDoesNotServe) {
  Start();
  const std::string post = Get("/healthz", "POST");
  EXPECT_EQ(StatusCode(post), 405);
  EXPECT_EQ(HeaderValue(post, "Allow"), "GET, HEAD");
  // A body where none is allowed, announced or chunked.
  EXPECT_EQ(StatusCode(Get("/healthz", "GET", "Content-Length: 5\r\n") + ""), 413);
  {
    Client c(port_);
    const std::string r = c.Exchange("GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                                     "\r\nContent-Length: 11\r\n\r\nhello world");
    EXPECT_EQ(StatusCode(r), 413) << r;
  }
  EXPECT_EQ(StatusCode(Get("/", "GET", "Transfer-Encoding: chunked\r\n")), 413);
  EXPECT_EQ(StatusCode(Get("/", "GET", "Content-Length: 100000000\r\n")), 413);
  EXPECT_EQ(StatusCode(Get("/", "PUT", "Content-Length: 100000000\r\n")), 405);
  // A header section over 8 KiB.
  const std::string big = Get("/", "GET", "X-Filler: " + std::string(9000, 'a') + "\r\n");
  EXPECT_EQ(StatusCode(big), 431) << big.substr(0, 80);
  // Malformed.
  {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange(std::string("\x01\x02 / HTTP/1.1\r\n\r\n", 18))), 400);
  }
  {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange("GET / HTTP/2.0\r\nHost: x\r\n\r\n")), 400);  // HTTP/1.x only
  }
  {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange("GET / HTTP/1.1\r\nBad Header\r\n\r\n")), 400);
  }
  {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange("GET / HTTP/1.1\r\n\r\n")), 400);  // no Host
  }
}

TEST_F(HttpServerTest, LoopbackExemptionNeedsTheRightHost) {
  Start();
  const std::string port = std::to_string(port_);
  for (const std::string& host : std::vector<std::string>{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port}) {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange("GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n")), 503) << host;
  }
  for (const std::string& host :
       std::vector<std::string>{"evil.example:" + port, "evil.example", "127.0.0.1", "127.0.0.2:" + port,
                                "localhost:1" + port, "[::1]:" + port, "127.0.0.1:" + port + ":1"}) {
    Client c(port_);
    EXPECT_EQ(StatusCode(c.Exchange("GET /metrics HTTP/1.1\r\nHost: " + host + "\r\n\r\n")), 421) << host;
  }
}

TEST_F(HttpServerTest, RefusesPlainHttpBeyondLoopback) {
  HttpServer server(io_, stats_, clock_, HealthInfo{}, &source_);
  const Status s = server.Listen("0.0.0.0:0");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("http.listen: \"0.0.0.0:0\" is beyond loopback", 0), 0u) << s.message();
  config::HttpConfig cfg;
  cfg.listen = "127.0.0.1:0";
  cfg.users_file = "/nonexistent";
  EXPECT_EQ(server.Listen(cfg).message(), "http.users_file: passwords are accepted only over HTTPS (http.tls)");
}

TEST_F(HttpServerTest, IdleConnectionsMakeRoomForNewOnes) {
  config::HttpConfig cfg;
  cfg.max_connections = 4;
  // Idle connections could keep their slots for an hour: the answer below (the client waits
  // 5 s for it) comes only because the server closes the oldest idle one to make room.
  Start(cfg, std::chrono::hours(1));
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(idle.back()->connected());
  }
  EXPECT_EQ(StatusCode(Get("/healthz")), 503);
  EXPECT_LE(OnIo<std::size_t>([this] { return server_->connections(); }), 4u);
}

// In a test's child process: this process may open at most `n` files from now on.
bool LowerOpenFileLimit(rlim_t n) {
  rlimit low{};
  if (::getrlimit(RLIMIT_NOFILE, &low) != 0) return false;
  low.rlim_cur = n;
  return ::setrlimit(RLIMIT_NOFILE, &low) == 0;
}

// Under an open-file limit of 48, http.max_connections 16 is cut to 12 (a quarter), so that
// idle connections cannot take the descriptors the rest of the gateway needs. Runs in a child
// process, whose open-file limit it lowers; the exit code is the number of connections served.
TEST(HttpServerAcceptTest, ConnectionsTakeAtMostAQuarterOfTheOpenFileLimit) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!LowerOpenFileLimit(48)) ::_exit(200);
    boost::asio::io_context io;
    GatewayStats stats;
    SimulatedClock clock;
    HttpServer server(io, stats, clock, HealthInfo{"gw", "", "1"});
    config::HttpConfig cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.max_connections = 16;
    if (!server.Listen(cfg).ok()) ::_exit(201);
    if (server.max_connections() != 12) ::_exit(202);
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 20; ++i) {
      idle.push_back(std::make_unique<Client>(server.port()));
      if (!idle.back()->connected()) ::_exit(203);
    }
    io.run_for(1000ms);  // accepts every waiting connection, replacing the oldest idle ones
    ::_exit(static_cast<int>(std::min<std::size_t>(server.connections(), 199)));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  // 12: as many as the cap allows (16 without it); 2xx: a step of the child failed.
  EXPECT_EQ(WEXITSTATUS(status), 12);
}

// Accept fails with EMFILE while every descriptor is taken: the loop backs off instead of
// spinning, and serves again once descriptors are free. Runs in a child process, whose
// open-file limit it lowers.
TEST(HttpServerAcceptTest, BacksOffWhileOutOfDescriptors) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    if (!LowerOpenFileLimit(64)) ::_exit(14);
    boost::asio::io_context io;
    GatewayStats stats;
    stats.broker_connected = true;
    SimulatedClock clock;
    HttpServer server(io, stats, clock, HealthInfo{"gw", "", "1"});
    if (!server.Listen("127.0.0.1:0").ok()) ::_exit(10);
    const unsigned short port = server.port();
    // UndefinedBehaviorSanitizer checks an object's type on its first use by reading it
    // through a pipe, which fails once every descriptor is taken (a false "invalid vptr"):
    // the error categories and a pool thread (as the server's password checks run on) are used
    // once here, while descriptors are left.
    if (!boost::system::error_code(boost::asio::error::eof).failed()) ::_exit(15);
    boost::asio::thread_pool warm(1);
    warm.join();
    // Take every descriptor left.
    std::vector<int> fillers;
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) ::_exit(13);
    fillers.push_back(null_fd);
    for (int fd; (fd = ::dup(null_fd)) >= 0;) fillers.push_back(fd);
    if (errno != EMFILE) ::_exit(11);
    if (::write(ready[1], &port, sizeof port) != sizeof port) ::_exit(12);
    io.run_for(1500ms);
    const std::uint64_t failures = server.accept_failures();
    for (int fd : fillers) ::close(fd);
    io.run_for(1500ms);  // the waiting client gets its answer now
    ::_exit(failures >= 2 && failures <= 12 ? 0 : static_cast<int>(std::min<std::uint64_t>(failures, 99) + 100));
  }
  ::close(ready[1]);
  unsigned short port = 0;
  ASSERT_EQ(::read(ready[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(ready[0]);
  Client c(port);  // completed by the kernel's backlog, not yet accepted
  ASSERT_TRUE(c.connected());
  const std::string r = c.Exchange("GET /healthz HTTP/1.1\r\nHost: localhost:" + std::to_string(port) + "\r\n\r\n");
  EXPECT_EQ(StatusCode(r), 200) << r;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  // 0: between 2 and 12 failed accepts in 1.5 s (50 ms doubling to 1 s gives 5); 1xx: 1xx-100 of them.
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace vg
