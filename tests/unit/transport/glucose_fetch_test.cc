// GlucoseRecordFetch: which records reach the pipeline, which RACP request each connection
// sends, and what the state file holds when writing it fails or the gateway dies in between.
// The file system is a fake that fails any step on demand; timers run on an io_context that
// the test polls, never on the wall clock.
#include "transport/glucose_fetch.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "unit/core/fake_file_system.h"

namespace vg {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Step = FakeFileSystem::Step;

constexpr const char* kAddress = "C0:FF:EE:00:00:01";
constexpr const char* kStatePath = "/state/ble-C0_FF_EE_00_00_01.state";

class RecordingSink final : public TransportSink {
 public:
  void OnBytes(std::span<const std::uint8_t>) override {}
  void OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value) override {
    EXPECT_EQ(uuid, 0x2A18);
    if (value.size() >= 3) sequences.push_back(static_cast<std::uint16_t>(value[1] | value[2] << 8));
  }
  void OnLink(bool, std::string_view) override {}
  bool Saturated() const override { return saturated; }
  std::vector<std::uint16_t> sequences;  // of the records handed on, in order
  bool saturated = false;
};

// A Glucose Measurement with sequence number `seq` (flags 0: no time offset, no concentration).
Bytes Record(std::uint16_t seq) {
  return {0x00, static_cast<std::uint8_t>(seq & 0xFF), static_cast<std::uint8_t>(seq >> 8),
          0xE8, 0x07, 3, 15, 8, 0, 0};
}
const Bytes kSuccess = {0x06, 0x00, 0x01, 0x01};
const Bytes kNoRecords = {0x06, 0x00, 0x01, 0x06};
const Bytes kAll = {0x01, 0x01};
Bytes From(std::uint16_t seq) {
  return {0x01, 0x03, 0x01, static_cast<std::uint8_t>(seq & 0xFF),
          static_cast<std::uint8_t>(seq >> 8)};
}

std::string StateText(std::optional<int> seq) {
  nlohmann::json j = {{"format", "vitalgate-ble-state/1"}, {"address", kAddress}};
  j["glucose_last_sequence"] = seq ? nlohmann::json(*seq) : nlohmann::json(nullptr);
  return j.dump() + "\n";
}

class GlucoseFetchTest : public ::testing::Test {
 protected:
  // Timers that never fire unless a test asks for them: every write happens at a step the test
  // takes (the end of a transfer, of a connection, Stop()).
  std::unique_ptr<GlucoseRecordFetch> Make(std::string state_dir = "/state",
                                           GlucoseRecordFetch::Timing timing = Slow()) {
    ctx_ = TransportContext{&io_, &SystemClock::Instance(), "meter", &sink_, std::move(state_dir),
                            {}};
    return std::make_unique<GlucoseRecordFetch>(ctx_, fs_, kAddress, timing);
  }
  static GlucoseRecordFetch::Timing Slow() {
    return {std::chrono::hours(1), std::chrono::hours(1)};
  }
  // Runs whatever is due now (timers of 0 ms included), without waiting for anything.
  void RunDue() {
    for (int i = 0; i < 10; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }
  std::optional<int> Saved() {
    const auto it = fs_.files.find(kStatePath);
    if (it == fs_.files.end()) return std::nullopt;
    const auto j = nlohmann::json::parse(it->second);
    if (j["glucose_last_sequence"].is_null()) return -1;
    return j["glucose_last_sequence"].get<int>();
  }
  void Deliver(GlucoseRecordFetch& f, std::initializer_list<std::uint16_t> seqs) {
    for (std::uint16_t s : seqs) f.OnRecord(Record(s));
  }

  boost::asio::io_context io_;
  RecordingSink sink_;
  FakeFileSystem fs_;
  TransportContext ctx_;
};

TEST_F(GlucoseFetchTest, FirstConnectionAsksForAllAndLaterOnesForWhatCameAfter) {
  auto f = Make();
  EXPECT_EQ(f->state_path(), kStatePath);
  EXPECT_EQ(f->Begin(), kAll);
  Deliver(*f, {1, 2, 3});
  f->OnRacpIndication(kSuccess);
  EXPECT_FALSE(f->transfer_active());
  EXPECT_EQ(sink_.sequences, (std::vector<std::uint16_t>{1, 2, 3}));
  EXPECT_EQ(Saved(), 3);
  EXPECT_EQ(fs_.modes[kStatePath], 0600u);
  f->EndConnection();
  EXPECT_EQ(f->Begin(), From(4));
  f->OnRacpIndication(kNoRecords);
  EXPECT_EQ(fs_.writes, 1);  // nothing new: nothing written
}

TEST_F(GlucoseFetchTest, ARestartContinuesFromTheStateFile) {
  fs_.files[kStatePath] = StateText(41);
  auto f = Make();
  EXPECT_EQ(f->last_sequence(), 41);
  EXPECT_EQ(f->Begin(), From(42));
  // The top of the range: nothing can come "after" 0xFFFF, and the request stays valid.
  fs_.files[kStatePath] = StateText(0xFFFF);
  auto top = Make();
  EXPECT_EQ(top->Begin(), From(0xFFFF));
  top->OnRecord(Record(0xFFFF));
  EXPECT_TRUE(sink_.sequences.empty());  // already seen: skipped
}

TEST_F(GlucoseFetchTest, RecordsAMeterRepeatsDespiteTheFilterAreSkipped) {
  fs_.files[kStatePath] = StateText(3);
  auto f = Make();
  EXPECT_EQ(f->Begin(), From(4));
  Deliver(*f, {1, 2, 3, 4, 5});
  f->OnRacpIndication(kSuccess);
  EXPECT_EQ(sink_.sequences, (std::vector<std::uint16_t>{4, 5}));
  EXPECT_EQ(Saved(), 5);
}

TEST_F(GlucoseFetchTest, ARecordSentToASaturatedPipelineIsFetchedAgain) {
  auto f = Make();
  f->Begin();
  Deliver(*f, {1});
  sink_.saturated = true;
  Deliver(*f, {2});  // may be dropped by the pipeline
  sink_.saturated = false;
  Deliver(*f, {3});  // delivered, but after a gap: the position must not jump over 2
  f->OnRacpIndication(kSuccess);
  EXPECT_EQ(sink_.sequences, (std::vector<std::uint16_t>{1, 2, 3}));
  EXPECT_EQ(Saved(), 1);
  f->EndConnection();
  // The next connection asks from 2 again; it is no longer held there.
  EXPECT_EQ(f->Begin(), From(2));
  Deliver(*f, {2, 3});
  f->OnRacpIndication(kSuccess);
  EXPECT_EQ(Saved(), 3);
}

TEST_F(GlucoseFetchTest, AFailedWriteKeepsTheOldPositionAndIsRetried) {
  for (Step step : {Step::kCreate, Step::kWrite, Step::kFsync, Step::kRename}) {
    SCOPED_TRACE(static_cast<int>(step));
    fs_ = FakeFileSystem();
    fs_.files[kStatePath] = StateText(2);
    auto f = Make();
    f->Begin();
    Deliver(*f, {3, 4});
    fs_.FailAt(step);
    f->OnRacpIndication(kSuccess);
    // The file holds the old position, whole, and no temporary file is left behind.
    EXPECT_EQ(Saved(), 2);
    EXPECT_EQ(fs_.files.count(std::string(kStatePath) + ".tmp"), 0u);
    // A restart now would ask for 3 again: duplicates at worst, nothing skipped.
    EXPECT_EQ(Make()->Begin(), From(3));
    // The next chance to write (the end of the connection) succeeds.
    f->EndConnection();
    EXPECT_EQ(Saved(), 4);
  }
}

TEST_F(GlucoseFetchTest, AFailedDirectorySyncIsRetriedToo) {
  auto f = Make();
  f->Begin();
  Deliver(*f, {1});
  fs_.FailAt(Step::kSyncDir);
  f->OnRacpIndication(kSuccess);
  EXPECT_EQ(fs_.writes, 0);
  f->Stop();
  EXPECT_EQ(fs_.writes, 1);
  EXPECT_EQ(Saved(), 1);
}

TEST_F(GlucoseFetchTest, WritesThatKeepFailingAreTriedAtEveryChance) {
  auto f = Make();
  fs_.FailAt(Step::kFsync, 100);
  f->Begin();
  Deliver(*f, {1, 2});
  f->OnRacpIndication(kSuccess);
  f->EndConnection();
  f->Stop();
  EXPECT_FALSE(Saved());
  EXPECT_EQ(std::count(fs_.steps.begin(), fs_.steps.end(), std::string("write ") + kStatePath), 3);
  EXPECT_EQ(f->last_sequence(), 2);  // still known in memory, so this run repeats nothing
}

TEST_F(GlucoseFetchTest, DamagedStateFilesStartFromScratchRatherThanSkipRecords) {
  const std::string whole = StateText(7);
  const std::vector<std::string> damaged = {
      whole.substr(0, whole.size() / 2),   // cut short
      "",                                  // empty (created, never written)
      std::string("\0\xff\x13garbage", 10),  // not text
      std::string(5000, ' '),             // too large to be ours
      R"({"format":"vitalgate-ble-state/1","address":"C0:FF:EE:00:00:02","glucose_last_sequence":7})",
      R"({"format":"vitalgate-ble-state/1","address":"C0:FF:EE:00:00:01","glucose_last_sequence":-1})",
      R"({"format":"vitalgate-ble-state/2","address":"C0:FF:EE:00:00:01","glucose_last_sequence":7})",
  };
  for (const std::string& text : damaged) {
    SCOPED_TRACE(text.substr(0, 40));
    fs_.files[kStatePath] = text;
    auto f = Make();
    EXPECT_FALSE(f->last_sequence());
    EXPECT_EQ(f->Begin(), kAll);
  }
  // A read error is no different: everything is fetched again.
  fs_.files[kStatePath] = whole;
  fs_.FailAt(Step::kRead);
  EXPECT_EQ(Make()->Begin(), kAll);
  EXPECT_EQ(Make()->Begin(), From(8));
}

TEST_F(GlucoseFetchTest, ACrashBetweenRecordsRefetchesOnlyWhatWasNotYetSaved) {
  // Positions are saved as soon as the (zero) coalescing delay has passed.
  auto f = Make("/state", {std::chrono::hours(1), std::chrono::milliseconds(0)});
  f->Begin();
  Deliver(*f, {1, 2});
  RunDue();
  EXPECT_EQ(Saved(), 2);
  Deliver(*f, {3});
  f.reset();  // the process dies before the next write: no Stop(), nothing more saved
  EXPECT_EQ(Saved(), 2);
  auto again = Make();
  EXPECT_EQ(again->Begin(), From(3));  // record 3 comes again (a duplicate), none is lost
}

TEST_F(GlucoseFetchTest, ACrashInTheMiddleOfAWriteLeavesTheOldFileWhole) {
  for (Step step : {Step::kWrite, Step::kFsync, Step::kRename}) {
    SCOPED_TRACE(static_cast<int>(step));
    fs_ = FakeFileSystem();
    fs_.files[kStatePath] = StateText(5);
    auto f = Make();
    f->Begin();
    Deliver(*f, {6, 7});
    fs_.CrashAt(step, /*partial_bytes=*/12);
    f->OnRacpIndication(kSuccess);
    f.reset();
    EXPECT_EQ(Saved(), 5);
    EXPECT_EQ(Make()->Begin(), From(6));
  }
}

TEST_F(GlucoseFetchTest, WritesAreCoalescedWhileRecordsStreamIn) {
  auto f = Make("/state", {std::chrono::hours(1), std::chrono::milliseconds(0)});
  f->Begin();
  Deliver(*f, {1, 2, 3, 4});
  EXPECT_EQ(fs_.writes, 0);  // none inside the burst
  RunDue();
  EXPECT_EQ(fs_.writes, 1);
  EXPECT_EQ(Saved(), 4);
}

TEST_F(GlucoseFetchTest, ASilentTransferIsGivenUpAndALateResponseEndsNothing) {
  auto f = Make("/state", {std::chrono::milliseconds(0), std::chrono::hours(1)});
  f->Begin();
  RunDue();
  EXPECT_FALSE(f->transfer_active());
  // Live measurements still go through and move the position; the late response is ignored.
  Deliver(*f, {1});
  f->OnRacpIndication(kSuccess);
  EXPECT_EQ(sink_.sequences, (std::vector<std::uint16_t>{1}));
  f->Stop();
  EXPECT_EQ(Saved(), 1);
}

TEST_F(GlucoseFetchTest, ARefusedRequestEndsTheTransfer) {
  auto f = Make();
  f->Begin();
  f->OnRequestRefused("org.bluez.Error.Failed: Operation failed with ATT error: 0xfd");
  EXPECT_FALSE(f->transfer_active());
  // Malformed indications are ignored without ending anything.
  f->Begin();
  f->OnRacpIndication(Bytes{0x06});
  f->OnRacpIndication(Bytes{0x05, 0x00, 0x03, 0x00});  // a count: we never ask for one
  EXPECT_TRUE(f->transfer_active());
}

TEST_F(GlucoseFetchTest, WithoutAStateDirectoryNothingIsKept) {
  auto f = Make("");
  EXPECT_TRUE(f->state_path().empty());
  f->Begin();
  Deliver(*f, {1, 2});
  f->OnRacpIndication(kSuccess);
  f->Stop();
  EXPECT_TRUE(fs_.steps.empty());
  EXPECT_EQ(sink_.sequences, (std::vector<std::uint16_t>{1, 2}));
}

}  // namespace
}  // namespace vg
