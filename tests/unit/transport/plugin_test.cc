#include "transport/plugin.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "vitalgate/core/clock.h"

#ifndef VG_PLUGIN_DIR
#error "VG_PLUGIN_DIR must name the directory of the test plugin modules"
#endif

namespace vg {
namespace {

// Records what the transport delivers, and on which thread.
class RecordingSink final : public TransportSink {
 public:
  struct Event {
    char kind;  // 'b' bytes, 'c' characteristic, 'u' link up, 'd' link down
    std::uint16_t uuid = 0;
    std::string data;
    std::thread::id thread;
  };
  void OnBytes(std::span<const std::uint8_t> b) override {
    bytes.append(b.begin(), b.end());
    events.push_back({'b', 0, std::string(b.begin(), b.end()), std::this_thread::get_id()});
  }
  void OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> v) override {
    events.push_back({'c', uuid, std::string(v.begin(), v.end()), std::this_thread::get_id()});
  }
  void OnLink(bool up, std::string_view reason) override {
    events.push_back({up ? 'u' : 'd', 0, std::string(reason), std::this_thread::get_id()});
  }
  bool Saturated() const override { return saturated; }
  std::string bytes;
  std::vector<Event> events;
  bool saturated = false;  // the pipeline behind the sink is full
};

// A plugin linked into the test: start() runs `body` on a thread of its own, like a vendor SDK.
struct FakePlugin {
  const vitalgate_host* host = nullptr;
  std::thread worker;
  std::function<void(const vitalgate_host*)> body;
  std::string config;
  bool destroyed = false;
  std::atomic<bool> stopping{false};  // set by stop(): a retrying producer must give up
};
FakePlugin* g_fake = nullptr;

const vitalgate_plugin kFakeTable = {
    VITALGATE_PLUGIN_ABI_VERSION,
    "fake",
    [](const char* config, const vitalgate_host* host) -> void* {
      g_fake->host = host;
      g_fake->config = config;
      return g_fake;
    },
    [](void* p) -> int {
      auto* f = static_cast<FakePlugin*>(p);
      f->worker = std::thread([f] { f->body(f->host); });
      return 0;
    },
    [](void* p) {
      auto* f = static_cast<FakePlugin*>(p);
      f->stopping.store(true);
      if (f->worker.joinable()) f->worker.join();
    },
    [](void* p) { static_cast<FakePlugin*>(p)->destroyed = true; },
};

class PluginHostTest : public ::testing::Test {
 protected:
  void SetUp() override { g_fake = &fake_; }
  void TearDown() override { g_fake = nullptr; }

  std::unique_ptr<PluginTransport> Make(std::size_t capacity = PluginTransport::kRingCapacity) {
    TransportContext ctx{&io_, &SystemClock::Instance(), "dev-1", &sink_, "", {}};
    PluginLibrary lib;
    lib.table = &kFakeTable;
    lib.path = "fake";
    auto t = std::make_unique<PluginTransport>(ctx, lib, capacity);
    EXPECT_TRUE(t->Create("{\"k\":1}").ok());
    return t;
  }

  // Runs the I/O loop until `done` or 10 s.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.restart();
      io_.run_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  boost::asio::io_context io_;
  RecordingSink sink_;
  FakePlugin fake_;
};

TEST_F(PluginHostTest, ThreadedProducerReachesTheSinkInOrderOnTheIoThread) {
  constexpr int kLines = 20000;
  std::atomic<int> drops{0};
  FakePlugin* f = &fake_;
  fake_.body = [&drops, f](const vitalgate_host* h) {
    h->link(h->ctx, 1, nullptr);
    for (int i = 0; i < kLines && !f->stopping.load(); ++i) {
      const std::string line = std::to_string(i) + "\n";
      // A producer that keeps everything retries when told the queue is full (until stopped,
      // so a failing test ends instead of hanging in Stop()).
      while (!f->stopping.load() &&
             h->emit_bytes(h->ctx, reinterpret_cast<const std::uint8_t*>(line.data()),
                           line.size()) == VITALGATE_PLUGIN_DROPPED) {
        drops.fetch_add(1);
        std::this_thread::yield();
      }
    }
    h->link(h->ctx, 0, "bridge closed");
  };
  auto t = Make(64);  // small, so the ring runs full and wraps many times
  EXPECT_EQ(fake_.config, "{\"k\":1}");
  t->Start();
  ASSERT_TRUE(RunUntil([&] { return !sink_.events.empty() && sink_.events.back().kind == 'd'; }));
  t->Stop();

  std::string expected;
  for (int i = 0; i < kLines; ++i) expected += std::to_string(i) + "\n";
  EXPECT_EQ(sink_.bytes, expected);
  ASSERT_GE(sink_.events.size(), 3u);
  EXPECT_EQ(sink_.events.front().kind, 'u');
  // Its reason survives unless the link change found the ring full (then it waited aside).
  EXPECT_TRUE(sink_.events.back().data == "bridge closed" ||
              sink_.events.back().data == "plugin reported the link down");
  for (const auto& e : sink_.events) EXPECT_EQ(e.thread, std::this_thread::get_id());
  // The ring did run full, and each refusal was counted as a dropped chunk (the producer
  // then sent it again).
  EXPECT_GT(drops.load(), 0);
  EXPECT_EQ(t->dropped(), static_cast<std::uint64_t>(drops.load()));
}

TEST_F(PluginHostTest, FullRingDropsAndCountsButKeepsTheLinkState) {
  std::vector<int> results;
  fake_.body = [&results](const vitalgate_host* h) {
    for (std::uint8_t i = 0; i < 10; ++i) {
      results.push_back(h->emit_characteristic(h->ctx, 0x2A37, &i, 1));
    }
    h->link(h->ctx, 0, "gone");  // the ring is full: kept aside, not lost
    // Data after it would overtake it: refused until the link change is delivered.
    const std::uint8_t late = 99;
    results.push_back(h->emit_characteristic(h->ctx, 0x2A37, &late, 1));
  };
  auto t = Make(4);
  t->Start();
  fake_.worker.join();  // the I/O thread has not run: nothing was consumed
  ASSERT_EQ(results.size(), 11u);
  EXPECT_EQ(std::count(results.begin(), results.end(), VITALGATE_PLUGIN_OK), 4);
  EXPECT_EQ(std::count(results.begin(), results.end(), VITALGATE_PLUGIN_DROPPED), 7);
  EXPECT_EQ(t->dropped(), 7u);
  ASSERT_TRUE(RunUntil([&] { return sink_.events.size() >= 5; }));
  ASSERT_EQ(sink_.events.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(sink_.events[static_cast<std::size_t>(i)].kind, 'c');
    EXPECT_EQ(sink_.events[static_cast<std::size_t>(i)].uuid, 0x2A37);
    EXPECT_EQ(sink_.events[static_cast<std::size_t>(i)].data, std::string(1, static_cast<char>(i)));
  }
  EXPECT_EQ(sink_.events[4].kind, 'd');
  // Delivered: data is accepted again.
  const std::uint8_t again = 7;
  EXPECT_EQ(fake_.host->emit_characteristic(fake_.host->ctx, 0x2A37, &again, 1),
            VITALGATE_PLUGIN_OK);
  ASSERT_TRUE(RunUntil([&] { return sink_.events.size() >= 6; }));
  EXPECT_EQ(sink_.events[5].data, std::string(1, '\x07'));
  t->Stop();
}

TEST_F(PluginHostTest, SaturatedPipelineLeavesTheDataInThePluginsQueue) {
  fake_.body = [](const vitalgate_host* h) {
    for (std::uint8_t i = 0; i < 4; ++i) h->emit_bytes(h->ctx, &i, 1);
  };
  sink_.saturated = true;
  auto t = Make(4);
  t->Start();
  fake_.worker.join();
  io_.restart();
  io_.run_for(std::chrono::milliseconds(50));  // the I/O thread runs but takes nothing
  EXPECT_TRUE(sink_.bytes.empty());
  const std::uint8_t more = 9;
  EXPECT_EQ(fake_.host->emit_bytes(fake_.host->ctx, &more, 1), VITALGATE_PLUGIN_DROPPED);
  sink_.saturated = false;
  ASSERT_TRUE(RunUntil([&] { return sink_.bytes.size() >= 4; }));
  EXPECT_EQ(sink_.bytes, std::string("\x00\x01\x02\x03", 4));
  t->Stop();
}

TEST_F(PluginHostTest, LinkReasonsCannotForgeLogLines) {
  fake_.body = [](const vitalgate_host* h) {
    h->link(h->ctx, 0, "cable\n[error] device icu-3: forged\r\x1b[2J");
  };
  auto t = Make();
  t->Start();
  ASSERT_TRUE(RunUntil([&] { return !sink_.events.empty(); }));
  ASSERT_EQ(sink_.events[0].kind, 'd');
  EXPECT_EQ(sink_.events[0].data, "cable [error] device icu-3: forged  [2J");
  t->Stop();
}

TEST_F(PluginHostTest, LargeWritesAreSplitAndBadArgumentsRefused) {
  std::vector<int> results;
  std::string big(1300, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  fake_.body = [&results, &big](const vitalgate_host* h) {
    const auto* data = reinterpret_cast<const std::uint8_t*>(big.data());
    results.push_back(h->emit_bytes(h->ctx, data, big.size()));
    results.push_back(h->emit_characteristic(h->ctx, 0x2A35, data, VITALGATE_PLUGIN_MAX_CHUNK + 1));
    results.push_back(h->emit_bytes(h->ctx, nullptr, 3));
    results.push_back(h->emit_bytes(h->ctx, nullptr, 0));
  };
  auto t = Make();
  t->Start();
  fake_.worker.join();
  EXPECT_EQ(results, (std::vector<int>{VITALGATE_PLUGIN_OK, VITALGATE_PLUGIN_INVALID,
                                       VITALGATE_PLUGIN_INVALID, VITALGATE_PLUGIN_OK}));
  ASSERT_TRUE(RunUntil([&] { return sink_.bytes.size() >= big.size(); }));
  EXPECT_EQ(sink_.bytes, big);
  ASSERT_EQ(sink_.events.size(), 3u);  // 512 + 512 + 276
  EXPECT_EQ(sink_.events[2].data.size(), 276u);
  t->Stop();
}

TEST_F(PluginHostTest, StopDeliversWhatIsQueuedThenNothingMoreAndDestroyFollows) {
  fake_.body = [](const vitalgate_host* h) {
    const std::uint8_t v[] = {1, 2, 3};
    h->emit_bytes(h->ctx, v, sizeof v);
  };
  auto t = Make();
  t->Start();
  fake_.worker.join();
  t->Stop();  // the I/O loop never ran: Stop() hands over what is queued
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.bytes, std::string("\x01\x02\x03", 3));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(sink_.events.size(), 1u);
  EXPECT_FALSE(fake_.destroyed);
  t.reset();
  EXPECT_TRUE(fake_.destroyed);
}

// ---- Real shared libraries (built as MODULEs next to this test) ----

const std::string kDir = VG_PLUGIN_DIR;

TEST(PluginLoadTest, RefusesAMissingFileWithTheLoaderMessage) {
  auto lib = LoadPluginLibrary(kDir + "/does-not-exist.so");
  ASSERT_FALSE(lib.ok());
  EXPECT_NE(lib.status().message().find("cannot load plugin"), std::string::npos);
  EXPECT_NE(lib.status().message().find("No such file"), std::string::npos)
      << lib.status().message();
}

TEST(PluginLoadTest, RefusesAFileThatIsNotALibrary) {
  const std::string path = "/tmp/vg-not-a-plugin-" + std::to_string(::getpid()) + ".so";
  std::ofstream(path) << "this is text, not ELF\n";
  auto lib = LoadPluginLibrary(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(lib.ok());
  EXPECT_NE(lib.status().message().find(path + ": cannot load plugin: "), std::string::npos);
  // dlerror()'s own words follow ("invalid ELF header" or "file too short").
  EXPECT_GT(lib.status().message().size(), (path + ": cannot load plugin: ").size() + 5);
}

TEST(PluginLoadTest, RefusesALibraryWithoutTheEntryPoint) {
  const std::string path = kDir + "/vg-test-plugin-no-entry.so";
  auto lib = LoadPluginLibrary(path);
  ASSERT_FALSE(lib.ok());
  EXPECT_NE(lib.status().message().find("no entry point vitalgate_plugin_v1"), std::string::npos)
      << lib.status().message();
  EXPECT_NE(lib.status().message().find("undefined symbol"), std::string::npos)
      << lib.status().message();
}

TEST(PluginLoadTest, RefusesAnotherAbiVersionNamingBoth) {
  auto lib = LoadPluginLibrary(kDir + "/vg-test-plugin-bad-abi.so");
  ASSERT_FALSE(lib.ok());
  EXPECT_NE(
      lib.status().message().find("plugin ABI version 99, but this gateway supports version 1"),
      std::string::npos)
      << lib.status().message();
}

TEST(PluginLoadTest, ExamplePluginEmitsJsonlFromItsThreadAndObeysItsControlFifo) {
  const std::string fifo = "/tmp/vg-example-plugin-" + std::to_string(::getpid()) + ".fifo";
  boost::asio::io_context io;
  RecordingSink sink;
  TransportContext ctx{&io, &SystemClock::Instance(), "ext-1", &sink, "", {}};
  const nlohmann::json options = {
      {"path", kDir + "/vitalgate-example-plugin.so"},
      {"config", {{"rate_hz", 200}, {"metric", "spo2"}, {"value", 97}, {"control", fifo}}}};
  ASSERT_TRUE(PluginTransport::Check(options, "devices[0].transport").ok());
  auto made = PluginTransport::Make(ctx, options);
  ASSERT_TRUE(made.ok()) << made.status().message();
  auto t = std::move(*made);
  t->Start();
  auto run_until = [&](const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
    return done();
  };
  ASSERT_TRUE(run_until([&] { return sink.bytes.size() > 10 * 28; }));
  ASSERT_FALSE(sink.events.empty());
  EXPECT_EQ(sink.events.front().kind, 'u');
  EXPECT_EQ(sink.bytes.substr(0, sink.bytes.find('\n')), R"({"metric":"spo2","value":97})");

  const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0);
  const std::string cmd = "down probe unplugged\n";
  ASSERT_EQ(::write(fd, cmd.data(), cmd.size()), static_cast<ssize_t>(cmd.size()));
  ::close(fd);
  ASSERT_TRUE(run_until([&] { return sink.events.back().kind == 'd'; }));
  EXPECT_EQ(sink.events.back().data, "probe unplugged");
  t->Stop();
  t.reset();
  std::filesystem::remove(fifo);
}

TEST(PluginLoadTest, ExamplePluginRefusesABadConfig) {
  boost::asio::io_context io;
  RecordingSink sink;
  TransportContext ctx{&io, &SystemClock::Instance(), "ext-1", &sink, "", {}};
  const nlohmann::json options = {{"path", kDir + "/vitalgate-example-plugin.so"},
                                  {"config", {{"rate_hz", -1}}}};
  auto made = PluginTransport::Make(ctx, options);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("refused its configuration"), std::string::npos);
}

}  // namespace
}  // namespace vg
