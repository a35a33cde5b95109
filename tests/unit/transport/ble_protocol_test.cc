#include "transport/ble_protocol.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vitalgate/codec/codec.h"

namespace vg::ble {
namespace {

using Bytes = std::vector<std::uint8_t>;

TEST(BleAddressTest, AcceptsSixHexPairsInEitherCase) {
  EXPECT_TRUE(IsValidAddress("C0:FF:EE:00:00:01"));
  EXPECT_TRUE(IsValidAddress("c0:ff:ee:0a:bc:d1"));
  EXPECT_FALSE(IsValidAddress(""));
  EXPECT_FALSE(IsValidAddress("C0:FF:EE:00:00"));
  EXPECT_FALSE(IsValidAddress("C0:FF:EE:00:00:01:02"));
  EXPECT_FALSE(IsValidAddress("C0-FF-EE-00-00-01"));
  EXPECT_FALSE(IsValidAddress("C0:FF:EE:00:00:0G"));
  EXPECT_FALSE(IsValidAddress("C0FFEE000001"));
  EXPECT_FALSE(IsValidAddress(" C0:FF:EE:00:00:01"));
}

TEST(BleAddressTest, ObjectPathsFollowBluezNaming) {
  EXPECT_EQ(AdapterObjectPath("hci0"), "/org/bluez/hci0");
  EXPECT_EQ(DeviceObjectPath("hci0", "c0:ff:ee:0a:bc:d1"), "/org/bluez/hci0/dev_C0_FF_EE_0A_BC_D1");
  EXPECT_EQ(DeviceObjectPath("hci1", "C0:FF:EE:00:00:01"), "/org/bluez/hci1/dev_C0_FF_EE_00_00_01");
  EXPECT_EQ(StateFileName("c0:ff:ee:00:00:01"), "ble-C0_FF_EE_00_00_01.state");
  EXPECT_EQ(CanonicalAddress("c0:ff:ee:0a:bc:d1"), "C0:FF:EE:0A:BC:D1");
}

TEST(BleAddressTest, AdapterNamesAndBusAddresses) {
  EXPECT_TRUE(IsValidAdapterName("hci0"));
  EXPECT_TRUE(IsValidAdapterName("hci_10"));
  EXPECT_FALSE(IsValidAdapterName(""));
  EXPECT_FALSE(IsValidAdapterName("hci0/dev"));
  EXPECT_FALSE(IsValidAdapterName("hci-0"));
  EXPECT_TRUE(IsValidBusAddress("system"));
  EXPECT_TRUE(IsValidBusAddress("unix:path=/run/dbus/system_bus_socket"));
  EXPECT_TRUE(IsValidBusAddress("unix:abstract=/tmp/x,guid=123"));
  EXPECT_FALSE(IsValidBusAddress("session"));
  EXPECT_FALSE(IsValidBusAddress("unix:"));
  EXPECT_FALSE(IsValidBusAddress(":path=/x"));
  EXPECT_FALSE(IsValidBusAddress("/run/dbus/system_bus_socket"));
}

TEST(BleUuidTest, SixteenBitFormOfSigUuids) {
  EXPECT_EQ(Uuid16From128("00002a37-0000-1000-8000-00805f9b34fb"), 0x2A37);
  EXPECT_EQ(Uuid16From128("00002A52-0000-1000-8000-00805F9B34FB"), 0x2A52);
  EXPECT_EQ(Uuid16From128("0000180d-0000-1000-8000-00805f9b34fb"), 0x180D);
  // Vendor UUIDs and 32-bit SIG forms are not ours.
  EXPECT_FALSE(Uuid16From128("6e400003-b5a3-f393-e0a9-e50e24dcca9e"));
  EXPECT_FALSE(Uuid16From128("12342a37-0000-1000-8000-00805f9b34fb"));
  EXPECT_FALSE(Uuid16From128("00002a37-0000-1000-8000-00805f9b34fc"));
  EXPECT_FALSE(Uuid16From128("00002a37"));
  EXPECT_FALSE(Uuid16From128("0000zz37-0000-1000-8000-00805f9b34fb"));
}

TEST(BleUuidTest, TheGattCodecAnnouncesWhatTheTransportUses) {
  // The app hands a codec's characteristics to the ble transport (TransportContext): it
  // subscribes to those that notify or indicate and reads those that only read (battery).
  const CodecDescriptor* gatt = FindCodec("gatt");
  ASSERT_NE(gatt, nullptr);
  const auto uuids = gatt->characteristics;
  for (int u : {0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A18, 0x2A9D, 0x2A19}) {
    EXPECT_NE(std::find(uuids.begin(), uuids.end(), u), uuids.end()) << std::hex << u;
  }
}

TEST(BleFlagsTest, OperationsAreRecognisedAndAccessRequirementsIgnored) {
  const std::vector<std::string> flags = {"encrypt-read", "indicate", "write"};
  const CharacteristicFlags f = ParseCharacteristicFlags(flags);
  EXPECT_FALSE(f.read);
  EXPECT_TRUE(f.write);
  EXPECT_TRUE(f.indicate);
  EXPECT_FALSE(f.notify);
  const std::vector<std::string> notify = {"read", "notify", "write-without-response"};
  const CharacteristicFlags g = ParseCharacteristicFlags(notify);
  EXPECT_TRUE(g.read && g.notify);
  EXPECT_FALSE(g.write);  // without response is not enough for RACP
}

// Vectors R1, R2 (tests/vectors/README.md), plus the uint16 byte order.
TEST(RacpTest, ReportStoredRecordsRequests) {
  EXPECT_EQ(RacpReportStoredRecords(std::nullopt), (Bytes{0x01, 0x01}));
  EXPECT_EQ(RacpReportStoredRecords(6), (Bytes{0x01, 0x03, 0x01, 0x06, 0x00}));
  EXPECT_EQ(RacpReportStoredRecords(0x0102), (Bytes{0x01, 0x03, 0x01, 0x02, 0x01}));
  EXPECT_EQ(RacpReportStoredRecords(0xFFFF), (Bytes{0x01, 0x03, 0x01, 0xFF, 0xFF}));
}

TEST(RacpTest, ParsesResponsesAndCounts) {
  auto ok = ParseRacpIndication(Bytes{0x06, 0x00, 0x01, 0x01});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->op, RacpOpCode::kResponseCode);
  EXPECT_EQ(ok->request_op, 0x01);
  EXPECT_EQ(ok->response, static_cast<std::uint8_t>(RacpResponseCode::kSuccess));

  auto none = ParseRacpIndication(Bytes{0x06, 0x00, 0x01, 0x06});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->response, static_cast<std::uint8_t>(RacpResponseCode::kNoRecordsFound));

  auto unsupported = ParseRacpIndication(Bytes{0x06, 0x00, 0x0C, 0x02});
  ASSERT_TRUE(unsupported.ok());
  EXPECT_EQ(unsupported->request_op, 0x0C);
  EXPECT_EQ(RacpResponseName(unsupported->response), "op code not supported");

  auto count = ParseRacpIndication(Bytes{0x05, 0x00, 0x02, 0x01});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->op, RacpOpCode::kNumberOfRecordsResponse);
  EXPECT_EQ(count->count, 258);
}

TEST(RacpTest, RejectsWhatIsNotAResponse) {
  EXPECT_FALSE(ParseRacpIndication(Bytes{}).ok());
  EXPECT_FALSE(ParseRacpIndication(Bytes{0x06}).ok());
  // A request echoed back, a response with an operator, a response cut short (R12).
  auto echoed = ParseRacpIndication(Bytes{0x01, 0x00});
  ASSERT_FALSE(echoed.ok());
  EXPECT_NE(echoed.status().message().find("byte 0"), std::string::npos);
  EXPECT_NE(echoed.status().message().find("not a response"), std::string::npos);
  auto short_count = ParseRacpIndication(Bytes{0x05, 0x00, 0x02});
  ASSERT_FALSE(short_count.ok());
  EXPECT_NE(short_count.status().message().find("number of records needs 2 bytes"),
            std::string::npos);
  auto with_operator = ParseRacpIndication(Bytes{0x06, 0x01, 0x01, 0x01});
  ASSERT_FALSE(with_operator.ok());
  EXPECT_NE(with_operator.status().message().find("byte 1"), std::string::npos);
  auto short_response = ParseRacpIndication(Bytes{0x06, 0x00, 0x01});
  ASSERT_FALSE(short_response.ok());
  EXPECT_NE(short_response.status().message().find("byte 3"), std::string::npos);
}

TEST(RacpTest, ResponseNames) {
  EXPECT_EQ(RacpResponseName(0x01), "success");
  EXPECT_EQ(RacpResponseName(0x06), "no records found");
  EXPECT_EQ(RacpResponseName(0x08), "procedure not completed");
  EXPECT_EQ(RacpResponseName(0x2A), "response code 0x2a");
}

TEST(GlucoseSequenceTest, BytesOneAndTwoLittleEndian) {
  // G1 (Nordic): sequence number 1; G3 (constructed): 5.
  EXPECT_EQ(GlucoseSequenceNumber(Bytes{0x1B, 0x01, 0x00, 0xE3, 0x07, 0x02, 0x1B, 0x0B, 0x0A, 0x1E,
                                        0xFB, 0xFF, 0x1E, 0x00, 0x12, 0x05, 0x01}),
            1);
  EXPECT_EQ(GlucoseSequenceNumber(Bytes{0x02, 0x05, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00,
                                        0x5F, 0xB0, 0x11}),
            5);
  EXPECT_EQ(GlucoseSequenceNumber(Bytes{0x00, 0x34, 0x12}), 0x1234);
  EXPECT_FALSE(GlucoseSequenceNumber(Bytes{0x00, 0x34}));
}

TEST(GlucosePositionTest, MovesPastDeliveredRecordsAndHoldsAtTheFirstThatMayBeDropped) {
  BleState state;
  bool held = false;
  EXPECT_TRUE(AdvanceGlucosePosition(state, 1, false, held));
  EXPECT_TRUE(AdvanceGlucosePosition(state, 2, false, held));
  EXPECT_FALSE(AdvanceGlucosePosition(state, 2, false, held));        // a repeat
  EXPECT_FALSE(AdvanceGlucosePosition(state, std::nullopt, false, held));  // too short to tell
  EXPECT_EQ(state.glucose_last_sequence, 2);
  // Record 3 reached a saturated pipeline: it and everything after it this connection are
  // fetched again next time, even records delivered once the pipeline had room again.
  EXPECT_FALSE(AdvanceGlucosePosition(state, 3, true, held));
  EXPECT_TRUE(held);
  EXPECT_FALSE(AdvanceGlucosePosition(state, 4, false, held));
  EXPECT_EQ(state.glucose_last_sequence, 2);
  held = false;  // a new connection
  EXPECT_TRUE(AdvanceGlucosePosition(state, 3, false, held));
  EXPECT_EQ(state.glucose_last_sequence, 3);
}

class BleStateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "vg-ble-state-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/" + StateFileName("C0:FF:EE:00:00:01");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) { std::ofstream(path_) << text; }

  PosixFileSystem fs_;
  std::string dir_;
  std::string path_;
};

TEST_F(BleStateFileTest, MissingFileIsAnEmptyState) {
  auto s = LoadBleState(fs_, path_, "C0:FF:EE:00:00:01");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(s->glucose_last_sequence);
}

TEST_F(BleStateFileTest, RoundTripIsPrivateAndLeavesNoTemporaryFile) {
  BleState st;
  st.glucose_last_sequence = 4711;
  ASSERT_TRUE(SaveBleState(fs_, path_, "c0:ff:ee:00:00:01", st).ok());
  auto back = LoadBleState(fs_, path_, "C0:FF:EE:00:00:01");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->glucose_last_sequence, 4711);
  struct stat sb {};
  ASSERT_EQ(::stat(path_.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));

  // Overwriting replaces the number; "nothing seen" survives as such.
  st.glucose_last_sequence = 4712;
  ASSERT_TRUE(SaveBleState(fs_, path_, "C0:FF:EE:00:00:01", st).ok());
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01")->glucose_last_sequence, 4712);
  ASSERT_TRUE(SaveBleState(fs_, path_, "C0:FF:EE:00:00:01", BleState{}).ok());
  EXPECT_FALSE(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01")->glucose_last_sequence);
}

TEST_F(BleStateFileTest, StaleTemporaryFileDoesNotWidenTheMode) {
  std::ofstream(path_ + ".tmp") << "junk";
  ASSERT_EQ(::chmod((path_ + ".tmp").c_str(), 0644), 0);
  BleState st;
  st.glucose_last_sequence = 1;
  ASSERT_TRUE(SaveBleState(fs_, path_, "C0:FF:EE:00:00:01", st).ok());
  struct stat sb {};
  ASSERT_EQ(::stat(path_.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
}

TEST_F(BleStateFileTest, DamagedOrForeignFilesAreDataLoss) {
  Write("not json");
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01").status().code(), StatusCode::kDataLoss);
  Write(
      R"({"format":"vitalgate-ble-state/1","address":"C0:FF:EE:00:00:02","glucose_last_sequence":3})");
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01").status().code(), StatusCode::kDataLoss);
  Write(
      R"({"format":"vitalgate-ble-state/1","address":"C0:FF:EE:00:00:01","glucose_last_sequence":70000})");
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01").status().code(), StatusCode::kDataLoss);
  Write(R"({"format":"other","address":"C0:FF:EE:00:00:01","glucose_last_sequence":3})");
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01").status().code(), StatusCode::kDataLoss);
  Write(
      R"({"format":"vitalgate-ble-state/1","address":"C0:FF:EE:00:00:01","glucose_last_sequence":3})");
  EXPECT_EQ(LoadBleState(fs_, path_, "C0:FF:EE:00:00:01")->glucose_last_sequence, 3);
}

TEST_F(BleStateFileTest, MissingDirectoryIsUnavailable) {
  const Status s = SaveBleState(fs_, dir_ + "/missing/x.state", "C0:FF:EE:00:00:01", BleState{});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("missing/x.state.tmp"), std::string::npos);
}

}  // namespace
}  // namespace vg::ble
