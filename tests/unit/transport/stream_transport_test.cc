// StreamTransport's reconnect logic driven through a socket pair standing in for the device:
// start-up bytes, keep-alives, silence detection, one link-down report per outage, backoff.
#include "transport/stream_transport.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <nlohmann/json.hpp>

namespace vg {
namespace {

using Socket = boost::asio::local::stream_protocol::socket;

class RecordingSink final : public TransportSink {
 public:
  void OnBytes(std::span<const std::uint8_t> b) override { bytes.append(b.begin(), b.end()); }
  void OnCharacteristic(std::uint16_t, std::span<const std::uint8_t>) override {}
  void OnLink(bool up, std::string_view) override { links.push_back(up); }
  bool Saturated() const override { return saturated; }
  std::string bytes;
  std::vector<bool> links;
  bool saturated = false;  // the pipeline behind the sink is full
};

// A "device" whose every Open() creates a fresh socket pair; the test holds the device end.
class PairTransport final : public StreamTransport<Socket> {
 public:
  PairTransport(const TransportContext& ctx, StreamOptions o, bool fail_opens)
      : StreamTransport(ctx, std::move(o)), fail_opens_(fail_opens), io_(*ctx.io), socket_(io_) {}
  ~PairTransport() override { Stop(); }
  std::unique_ptr<Socket> device;  // the other end
  int opens = 0;
  std::vector<std::int64_t> retry_delays;  // scheduled after each failed open, in order
  bool fail_opens_;

 protected:
  void Open() override {
    ++opens;
    if (fail_opens_) {
      Failed("no such device");
      retry_delays.push_back(retry_delay_ms());
      return;
    }
    socket_ = Socket(io_);
    device = std::make_unique<Socket>(io_);
    boost::asio::local::connect_pair(socket_, *device);
    Opened();
  }
  void CloseStream() override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  Socket* stream() override { return &socket_; }
  std::string Describe() const override { return "pair"; }

 private:
  boost::asio::io_context& io_;
  Socket socket_;
};

struct Rig {
  boost::asio::io_context io;
  RecordingSink sink;
  std::unique_ptr<PairTransport> t;
  Rig(StreamOptions o, bool fail_opens = false) {
    TransportContext ctx{&io, &SystemClock::Instance(), "dev", &sink, "", {}};
    t = std::make_unique<PairTransport>(ctx, std::move(o), fail_opens);
    t->Start();
  }
  void Run(int ms) {
    io.restart();
    io.run_for(std::chrono::milliseconds(ms));
  }
};

TEST(StreamTransportTest, ReadsBytesAndSendsStartupBytes) {
  StreamOptions o;
  o.init_bytes = std::string("\x7D\x81\xA1", 3);
  Rig rig(o);
  ASSERT_EQ(rig.sink.links, std::vector<bool>{true});
  boost::asio::write(*rig.t->device, boost::asio::buffer(std::string("hello")));
  rig.Run(50);
  EXPECT_EQ(rig.sink.bytes, "hello");
  std::string got(3, '\0');
  boost::asio::read(*rig.t->device, boost::asio::buffer(got));
  EXPECT_EQ(got, std::string("\x7D\x81\xA1", 3));
}

TEST(StreamTransportTest, KeepaliveBytesAreSentPeriodically) {
  StreamOptions o;
  o.keepalive_bytes = "K";
  o.keepalive_ms = 20;
  Rig rig(o);
  rig.Run(110);
  rig.t->device->non_blocking(true);
  std::string got(64, '\0');
  boost::system::error_code ec;
  const std::size_t n = rig.t->device->read_some(boost::asio::buffer(got), ec);
  EXPECT_GE(n, 3u);
  EXPECT_EQ(got.substr(0, 3), "KKK");
}

TEST(StreamTransportTest, DeviceGoneReportsDownOnceThenReconnects) {
  StreamOptions o;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 20;
  Rig rig(o);
  rig.t->device->close();  // unplugged
  rig.Run(60);
  // Down once, then up again on the reopen.
  ASSERT_GE(rig.sink.links.size(), 3u);
  EXPECT_EQ(rig.sink.links[0], true);
  EXPECT_EQ(rig.sink.links[1], false);
  EXPECT_EQ(rig.sink.links[2], true);
  EXPECT_GE(rig.t->opens, 2);
}

TEST(StreamTransportTest, FailedOpensAreReportedOnceAndRetriedWithBackoff) {
  StreamOptions o;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 40;
  Rig rig(o, /*fail_opens=*/true);
  // Nothing but the retry timer is pending: each handler run is one reopen, however fast or
  // slow the machine.
  for (int i = 0; i < 5; ++i) {
    rig.io.restart();
    ASSERT_EQ(rig.io.run_one_for(std::chrono::seconds(5)), 1u) << "no reopen after failure " << i;
  }
  EXPECT_EQ(rig.t->opens, 6);
  EXPECT_EQ(rig.t->retry_delays, (std::vector<std::int64_t>{10, 20, 40, 40, 40, 40}));
  EXPECT_EQ(rig.sink.links, std::vector<bool>{false});  // one report for the whole outage
}

TEST(StreamTransportTest, SilenceTriggersAReconnect) {
  StreamOptions o;
  o.idle_reconnect_ms = 30;
  o.reconnect_min_ms = 10;
  Rig rig(o);
  rig.Run(100);
  EXPECT_GE(rig.t->opens, 2);
  ASSERT_GE(rig.sink.links.size(), 2u);
  EXPECT_EQ(rig.sink.links[1], false);
}

TEST(StreamTransportTest, SaturatedSinkPausesReadingWithoutLosingBytesOrTheLink) {
  StreamOptions o;
  o.idle_reconnect_ms = 30;
  Rig rig(o);
  rig.sink.saturated = true;
  // The read already in flight completes; the next one waits for room.
  boost::asio::write(*rig.t->device, boost::asio::buffer(std::string("first ")));
  rig.Run(10);
  ASSERT_EQ(rig.sink.bytes, "first ");
  boost::asio::write(*rig.t->device, boost::asio::buffer(std::string("waiting")));
  rig.Run(120);  // four idle periods: the silence is the gateway's own, not the device's
  EXPECT_EQ(rig.sink.bytes, "first ");
  EXPECT_EQ(rig.t->opens, 1);
  EXPECT_EQ(rig.sink.links, std::vector<bool>{true});
  rig.sink.saturated = false;
  rig.Run(20);
  EXPECT_EQ(rig.sink.bytes, "first waiting");  // the bytes waited in the socket
  EXPECT_EQ(rig.t->opens, 1);
}

TEST(StreamOptionsTest, ParsesAndValidates) {
  nlohmann::json o = {{"reconnect_min_ms", 100}, {"reconnect_max_ms", 50}, {"idle_reconnect_s", 0},
                      {"init_hex", ""}, {"keepalive_hex", ""}, {"keepalive_ms", 0}};
  EXPECT_FALSE(ParseStreamOptions(o).ok());
  o["reconnect_max_ms"] = 1000;
  o["init_hex"] = "7D 81 zz";
  EXPECT_NE(ParseStreamOptions(o).status().message().find("init_hex"), std::string::npos);
  o["init_hex"] = "7D 81 A1";
  o["keepalive_hex"] = "7D 81 AF";
  EXPECT_FALSE(ParseStreamOptions(o).ok());  // keepalive bytes without a period
  o["keepalive_ms"] = 5000;
  auto ok = ParseStreamOptions(o);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->init_bytes, std::string("\x7D\x81\xA1", 3));
}

}  // namespace
}  // namespace vg
