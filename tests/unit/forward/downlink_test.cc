// The downlink gate: who may acknowledge an alarm or move a device.
#include "vitalgate/forward/downlink.h"

#include <gtest/gtest.h>

#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::int64_t kNow = 1'796'000'000'000;
const std::string kAck = "vitalgate/v1/gw/cmd/ack";
const std::string kAssign = "vitalgate/v1/gw/cmd/assign";

PayloadKey Key(std::uint8_t seed, std::string kid = "dl1") {
  PayloadKey k{std::move(kid), {}};
  for (std::size_t i = 0; i < k.key.size(); ++i) k.key[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

std::string Stamped(const std::string& body, std::int64_t ts, const std::string& nonce) {
  std::string s = body.substr(0, body.size() - 1);
  s += ",\"ts\":\"" + FormatRfc3339(ts) + "\",\"nonce\":\"" + nonce + "\"}";
  return s;
}

DownlinkGateOptions Sealed() {
  DownlinkGateOptions o;
  o.ack_topic = kAck;
  o.assign_topic = kAssign;
  o.encryption = true;
  o.downlink_key = Key(1);
  o.window_ms = 120'000;
  o.not_before_ms = kNow - 3'600'000;
  return o;
}

TEST(DownlinkTest, ASealedFreshAckCounts) {
  DownlinkGate gate(Sealed());
  const std::string body = Stamped(R"({"alert_id":"abcd-1234","by":"nurse.kim"})", kNow, "n-00000001");
  auto env = SealEnvelope(Key(1), kAck, body);
  ASSERT_TRUE(env.ok());
  DownlinkRefusal why;
  auto cmd = gate.Admit(kAck, *env, false, kNow, &why);
  ASSERT_TRUE(cmd.ok()) << cmd.status().message();
  EXPECT_EQ(cmd->kind, DownlinkCommand::Kind::kAck);
  EXPECT_EQ(cmd->ack.alert_id, "abcd-1234");
  EXPECT_EQ(cmd->ack.by, "nurse.kim");
}

TEST(DownlinkTest, PlaintextAndPayloadKeyAndWrongTopicAreRefusedUnderEncryption) {
  DownlinkGate gate(Sealed());
  DownlinkRefusal why;
  const std::string body = Stamped(R"({"alert_id":"a-1","by":"x"})", kNow, "n-00000002");
  EXPECT_FALSE(gate.Admit(kAck, body, false, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kNotSealed);
  // Sealed with the payload key (any other key) does not count.
  auto other = SealEnvelope(Key(9, "dl1"), kAck, body);
  EXPECT_FALSE(gate.Admit(kAck, *other, false, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kSeal);
  // Sealed for cmd/assign, delivered on cmd/ack: the topic is part of the seal.
  auto moved = SealEnvelope(Key(1), kAssign, body);
  EXPECT_FALSE(gate.Admit(kAck, *moved, false, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kSeal);
}

TEST(DownlinkTest, AReplayedOrStaleCommandIsRefused) {
  DownlinkGate gate(Sealed());
  DownlinkRefusal why;
  const std::string body = Stamped(R"({"alert_id":"a-1","by":"x"})", kNow, "n-replay-1");
  auto env = SealEnvelope(Key(1), kAck, body);
  ASSERT_TRUE(gate.Admit(kAck, *env, false, kNow, &why).ok());
  EXPECT_FALSE(gate.Admit(kAck, *env, false, kNow + 1000, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kReplayed);
  // The same message later, after the window, is stale.
  EXPECT_FALSE(gate.Admit(kAck, *env, false, kNow + 200'000, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kStale);
  // No time stamp or no nonce: refused while encryption is on.
  auto bare = SealEnvelope(Key(1), kAck, R"({"alert_id":"a-1","by":"x"})");
  EXPECT_FALSE(gate.Admit(kAck, *bare, false, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kStale);
  // Stamped before the gateway started: stale even inside the window.
  DownlinkGateOptions late = Sealed();
  late.not_before_ms = kNow + 10;
  DownlinkGate restarted(late);
  auto fresh = SealEnvelope(Key(1), kAck, Stamped(R"({"alert_id":"a-1","by":"x"})", kNow, "n-00000003"));
  EXPECT_FALSE(restarted.Admit(kAck, *fresh, false, kNow + 20, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kStale);
}

TEST(DownlinkTest, RetainedMessagesNeverCount) {
  DownlinkGateOptions o;
  o.ack_topic = kAck;
  o.assign_topic = kAssign;
  DownlinkGate gate(o);
  DownlinkRefusal why;
  EXPECT_FALSE(gate.Admit(kAck, R"({"alert_id":"a-1","by":"x"})", true, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kRetained);
  EXPECT_TRUE(gate.Admit(kAck, R"({"alert_id":"a-1","by":"x"})", false, kNow, &why).ok())
      << "without encryption the broker's ACL is the authority";
}

TEST(DownlinkTest, WithoutADownlinkKeyEveryCommandIsRefusedWhileEncrypted) {
  DownlinkGateOptions o = Sealed();
  o.downlink_key.reset();
  DownlinkGate gate(o);
  DownlinkRefusal why;
  auto env = SealEnvelope(Key(1), kAck, Stamped(R"({"alert_id":"a","by":"x"})", kNow, "n-00000004"));
  EXPECT_FALSE(gate.Admit(kAck, *env, false, kNow, &why).ok());
  EXPECT_EQ(why, DownlinkRefusal::kNotSealed);
}

TEST(DownlinkTest, ActorsAreTextWithoutControlBidiOrMarkup) {
  EXPECT_TRUE(CheckActor("nurse.kim").ok());
  EXPECT_TRUE(CheckActor("Dr. Müller (ICU 3)").ok());
  EXPECT_TRUE(CheckActor("看护 林").ok());
  for (const char* bad : {"", "a\nb", "a\tb", "x\x7f", "<script>", "a&b", "say \"hi\"", "it's",
                          "\xE2\x80\xAE" "evil",  // U+202E RIGHT-TO-LEFT OVERRIDE
                          "\xE2\x81\xA6" "x",     // U+2066 LEFT-TO-RIGHT ISOLATE
                          "\xC2\x85",             // U+0085 (C1 control)
                          "\xC0\xAF",             // overlong '/'
                          "\xED\xA0\x80",         // a surrogate
                          "\xE2\x80"}) {          // truncated
    EXPECT_FALSE(CheckActor(bad).ok()) << bad;
  }
  EXPECT_FALSE(CheckActor(std::string(129, 'a')).ok());
}

TEST(DownlinkTest, AssignCommandsAreStrictlyChecked) {
  EXPECT_TRUE(ParseAssignCommand(R"({"device":"ox-1","patient":"p-2","by":"n"})").ok());
  auto un = ParseAssignCommand(R"({"device":"ox-1","patient":null,"by":"n"})");
  ASSERT_TRUE(un.ok());
  EXPECT_FALSE(un->patient.has_value());
  for (const char* bad : {R"({"device":"ox-1","by":"n"})", R"({"patient":"p","by":"n"})",
                          R"({"device":"ox-1","patient":"p/2","by":"n"})",
                          R"({"device":"ox 1","patient":"p","by":"n"})",
                          R"({"device":"ox-1","patient":"p","by":"<b>"})",
                          R"({"device":"ox-1","patient":"p","by":"n","extra":1})",
                          R"({"device":"ox-1","patient":"p","by":"n","nonce":"short"})",
                          R"({"device":"ox-1","patient":"p","by":"n","ts":"yesterday"})", "[]"}) {
    EXPECT_FALSE(ParseAssignCommand(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace vg
