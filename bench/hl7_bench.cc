// HL7 v2 destination benchmarks: rendering PCD-01 readings messages and PCD-04 alarm messages,
// and whole deliveries (render, MLLP send, wait for the ACK) to a receiver on loopback that
// answers AA at once.
//   build/release/bench/bench_hl7 --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "vitalgate/core/clock.h"
#include "vitalgate/forward/hl7.h"

namespace vg {
namespace {

constexpr const char* kMetrics[][2] = {{"spo2", "97"},         {"pulse_rate", "72"},
                                       {"heart_rate", "71"},   {"resp_rate", "16"},
                                       {"temperature", "36.9"}, {"bp_systolic", "121"}};

std::shared_ptr<const RenderContext> Context() {
  auto ctx = std::make_shared<RenderContext>();
  ctx->gateway_id = "ward7-gw1";
  ctx->devices["ox-1"] = DeviceInfo{"ox-1", "ble", "gatt", "C0:FF:EE:00:00:01", "", "", "", "", ""};
  ctx->devices["mon-2"] = DeviceInfo{"mon-2", "serial", "masimo", "", "/dev/ttyUSB0", "", "", "", ""};
  ctx->patients["p-001"] = PatientInfo{"p-001", "W7^12^3"};
  ctx->limits = [](std::string_view, Metric m) {
    return m == Metric::kSpo2 ? ActiveLimits{90, std::nullopt} : ActiveLimits{};
  };
  return ctx;
}

// `n` readings of one patient: six metrics per time stamp from two devices, as a monitor sends.
std::vector<OutboxRow> Readings(int n) {
  std::vector<OutboxRow> rows;
  for (int i = 0; i < n; ++i) {
    const auto& [metric, value] = kMetrics[i % 6];
    const int second = i / 6;
    OutboxRow r;
    r.seq = static_cast<std::uint64_t>(i + 1);
    r.patient = "p-001";
    r.body = std::string(R"({"id":"cd6fac20-10000)") + std::to_string(100000 + i) +
             R"(","device":")" + (i % 6 < 3 ? "ox-1" : "mon-2") + R"(","metric":")" + metric +
             R"(","value":)" + value + R"(,"ts":"2026-11-22T05:00:)" + (second < 10 ? "0" : "") +
             std::to_string(second % 60) + R"(.000Z"})";
    rows.push_back(std::move(r));
  }
  return rows;
}

DeliveryBatch Batch(const std::vector<OutboxRow>& rows, DeliveryBatch::Kind kind) {
  DeliveryBatch b;
  b.kind = kind;
  b.patient = "p-001";
  for (const OutboxRow& r : rows) b.rows.push_back(&r);
  b.context = Context();
  return b;
}

void BM_RenderPcd01(benchmark::State& state) {
  const auto rows = Readings(static_cast<int>(state.range(0)));
  const DeliveryBatch batch = Batch(rows, DeliveryBatch::Kind::kReadings);
  const hl7::MessageOptions options;
  std::size_t bytes = 0;
  for (auto _ : state) {
    const hl7::RenderedBatch out = hl7::RenderBatch(batch, options, 1'795'323'600'000);
    bytes += out.messages.front().text.size();
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["messages_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RenderPcd01)->Arg(1)->Arg(10)->Arg(100);

void BM_RenderPcd04(benchmark::State& state) {
  std::vector<OutboxRow> rows(1);
  rows[0].seq = 1;
  rows[0].patient = "p-001";
  rows[0].body =
      R"({"id":"cd6fac20-1000000002a","alarm_id":"cd6fac20-10000000019","patient":"p-001",)"
      R"("kind":"threshold","metric":"spo2","priority":"high","state":"active","value":84,)"
      R"("limit":85,"message":"SpO2 84 % below 85 %","ts":"2026-11-22T05:03:10.000Z",)"
      R"("raised_ts":"2026-11-22T05:02:55.000Z"})";
  const DeliveryBatch batch = Batch(rows, DeliveryBatch::Kind::kAlert);
  const hl7::MessageOptions options;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hl7::RenderBatch(batch, options, 1'795'323'600'000));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RenderPcd04);

// A receiver on 127.0.0.1 that answers every message with AA, on its own thread.
class AckingReceiver {
 public:
  AckingReceiver() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~AckingReceiver() {
    // A connection of our own ends an accept() still waiting (when the link never came).
    boost::system::error_code ignored;
    boost::asio::ip::tcp::socket wake(io_);
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ignored);
    wake.close(ignored);
    thread_.join();
    acceptor_.close(ignored);
  }
  std::uint16_t port() const { return port_; }

 private:
  void Serve() {
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (ec) return;
    hl7::MllpReader reader;
    std::array<char, 65536> buf{};
    while (true) {
      const std::size_t n = socket.read_some(boost::asio::buffer(buf), ec);
      if (ec || !reader.Feed(std::string_view(buf.data(), n)).ok()) return;
      while (auto message = reader.Next()) {
        // MSH-10 is the tenth |-separated part of the first segment.
        std::size_t pos = 0;
        for (int i = 0; i < 9 && pos != std::string::npos; ++i) pos = message->find('|', pos + 1);
        const std::size_t end = message->find('|', pos + 1);
        const std::string control = message->substr(pos + 1, end - pos - 1);
        std::string ack;
        hl7::AppendMllpFrame(ack, "MSH|^~\\&|ENGINE||VG||20261122||ACK^R01^ACK|1|P|2.6\rMSA|AA|" +
                                      control + "\r");
        boost::asio::write(socket, boost::asio::buffer(ack), ec);
        if (ec) return;
      }
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Whole deliveries, one message in flight: render, frame, send, read and check the ACK.
void BM_MllpDeliver(benchmark::State& state) {
  AckingReceiver receiver;
  hl7::LinkOptions o;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  auto link = hl7::MakeMllpLink(o, SystemClock::Instance());
  if (Status s = link->Connect(std::chrono::seconds(5)); !s.ok()) {
    state.SkipWithError(s.message().c_str());
    return;
  }
  const auto rows = Readings(static_cast<int>(state.range(0)));
  const DeliveryBatch batch = Batch(rows, DeliveryBatch::Kind::kReadings);
  for (auto _ : state) {
    const DeliveryOutcome out = link->Deliver(batch, std::chrono::seconds(5));
    if (out.failure) {
      state.SkipWithError(out.failure->reason.c_str());
      break;
    }
  }
  link->Close();
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["messages_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MllpDeliver)->Arg(1)->Arg(100)->UseRealTime();

}  // namespace
}  // namespace vg

BENCHMARK_MAIN();
