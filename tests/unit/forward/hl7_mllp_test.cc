// MLLP framing, the bounded frame reader, ACK parsing and the link's option checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "vitalgate/forward/hl7.h"
#include "vitalgate/core/net.h"

namespace vg::hl7 {
namespace {

std::string Framed(std::string_view message) {
  std::string out;
  AppendMllpFrame(out, message);
  return out;
}

TEST(Hl7Mllp, FramesAndReadsBackAcrossArbitrarySplits) {
  const std::string stream = Framed("MSH|one\r") + "\r\n" + Framed("MSH|two\r");
  EXPECT_EQ(stream.front(), '\x0b');
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    MllpReader reader(64);
    for (std::size_t i = 0; i < stream.size(); i += chunk) {
      ASSERT_TRUE(reader.Feed(std::string_view(stream).substr(i, chunk)).ok());
    }
    EXPECT_EQ(reader.Next(), "MSH|one\r");
    EXPECT_EQ(reader.Next(), "MSH|two\r");
    EXPECT_EQ(reader.Next(), std::nullopt);
    EXPECT_FALSE(reader.InFrame());
  }
}

TEST(Hl7Mllp, GarbageNamesTheByteOffset) {
  MllpReader reader;
  const Status s = reader.Feed("HTTP/1.1 400");
  EXPECT_EQ(s.message(), "MLLP: byte 0: expected a start block (0x0b), got 0x48");
  // Stays failed.
  EXPECT_FALSE(reader.Feed(Framed("MSH|x")).ok());
  EXPECT_EQ(reader.Next(), std::nullopt);
}

TEST(Hl7Mllp, EndBlockWithoutCarriageReturn) {
  MllpReader reader;
  const Status s = reader.Feed("\x0bMSH|a\x1cX");
  EXPECT_EQ(s.message(), "MLLP: byte 7: end block not followed by CR, got 0x58");
}

TEST(Hl7Mllp, StartBlockInsideAMessage) {
  MllpReader reader;
  EXPECT_EQ(reader.Feed("\x0bMSH\x0b").message(), "MLLP: byte 4: start block inside a message");
}

TEST(Hl7Mllp, MessagesLongerThanTheBoundAreRefused) {
  MllpReader reader(8);
  ASSERT_TRUE(reader.Feed(Framed("12345678")).ok());
  EXPECT_EQ(reader.Next(), "12345678");
  const Status s = reader.Feed("\x0b" "123456789");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "MLLP: byte 20: message longer than 8 bytes");
}

TEST(Hl7Ack, AcceptAndErrorTexts) {
  auto ack = ParseAck("MSH|^~\\&|ENGINE||VG||20261122||ACK^R01^ACK|9|P|2.6\rMSA|AA|D123\r");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->code, AckCode::kAA);
  EXPECT_EQ(ack->control_id, "D123");
  EXPECT_EQ(ack->text, "");

  ack = ParseAck(
      "MSH|^~\\&|E||V||1||ACK|9|P|2.6\rMSA|AE|D123|old text\r"
      "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Patient \\T\\ visit unknown\r");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->code, AckCode::kAE);
  EXPECT_EQ(ack->text, "Patient & visit unknown");

  ack = ParseAck("MSH|^~\\&|E||V||1||ACK|9|P|2.6\rMSA|AR|D1\rERR||PID^1^3|204^Unknown key^HL70357|E\r");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->code, AckCode::kAR);
  EXPECT_EQ(ack->text, "Unknown key");

  // v2.4 style ERR-1, and MSA-3 when there is no ERR.
  ack = ParseAck("MSH|^~\\&|E||V||1||ACK|9|P|2.4\rMSA|CE|D1\rERR|PID^1^3^103&Table value not found&HL70357\r");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->code, AckCode::kCE);
  EXPECT_EQ(ack->text, "Table value not found");
  ack = ParseAck("MSH|^~\\&|E||V||1||ACK|9|P|2.4\nMSA|CR|D1|busy\n");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->code, AckCode::kCR);
  EXPECT_EQ(ack->text, "busy");
}

TEST(Hl7Ack, OtherDelimitersAreHonoured) {
  auto ack = ParseAck("MSH#$%!*#E##V##1##ACK#9#P#2.6\rMSA#CA#D!F!1\r");
  ASSERT_TRUE(ack.ok()) << ack.status().message();
  EXPECT_EQ(ack->code, AckCode::kCA);
  EXPECT_EQ(ack->control_id, "D#1");
}

TEST(Hl7Ack, MalformedAcknowledgements) {
  EXPECT_EQ(ParseAck("").status().message(), "ACK: does not start with an MSH segment");
  EXPECT_EQ(ParseAck("MSH|^~\\&|E\rPID|1\r").status().message(), "ACK: no MSA segment");
  EXPECT_EQ(ParseAck("MSH|^~\\&|E\rMSA|OK|D1\r").status().message(),
            "ACK: MSA-1: unknown acknowledgment code \"OK\"");
  EXPECT_EQ(ParseAck("MSH|^~\\&|E\rMSA|AA\r").status().message(),
            "ACK: MSA-2: message control id is empty");
}

nlohmann::json Options(std::string_view text) { return nlohmann::json::parse(text); }

TEST(Hl7LinkOptions, DefaultsAndForeignKeys) {
  auto o = ParseLinkOptions(Options(R"({"type":"hl7v2","host":"127.0.0.1"})"), "destinations[1]");
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->port, 2575);
  EXPECT_FALSE(o->tls);
  EXPECT_EQ(o->timeout, std::chrono::milliseconds(30000));
  EXPECT_EQ(o->max_retries, 3);
  EXPECT_EQ(o->message.sending_application, "vitalgate");
  EXPECT_EQ(o->message.processing_id, "P");
}

TEST(Hl7LinkOptions, PlainTcpOnlyToLoopback) {
  for (const char* host : {"localhost", "127.0.0.1", "127.8.9.10", "::1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"ehr.example", "10.0.0.1", "::ffff:10.0.0.1", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
  auto o = ParseLinkOptions(Options(R"({"host":"engine.example"})"), "destinations[0]");
  EXPECT_EQ(o.status().message(),
            "destinations[0].tls: required for host engine.example (plain TCP only to localhost, "
            "127.0.0.1 or ::1)");
}

TEST(Hl7LinkOptions, ErrorsNameTheKey) {
  EXPECT_EQ(ParseLinkOptions(Options(R"({"host":"127.0.0.1","port":"x"})"), "d").status().message(),
            "d.port: expected an integer, got a string");
  EXPECT_EQ(ParseLinkOptions(Options(R"({"host":""})"), "d").status().message(),
            "d.host: must not be empty");
  EXPECT_EQ(ParseLinkOptions(Options(R"({"host":"h","tls":{"ca_file":"/ca","cert_file":"/c"}})"),
                             "d")
                .status()
                .message(),
            "d.tls: cert_file and key_file must be given together");
  EXPECT_EQ(ParseLinkOptions(Options(R"({"host":"h","tls":{"ca":"/ca"}})"), "d").status().message()
                .rfind("d.tls.", 0),
            0u);
  EXPECT_EQ(ParseLinkOptions(Options(R"({"host":"::1","assigning_authority":"a&b&c&d"})"), "d")
                .status()
                .message(),
            "d.assigning_authority: expected a namespace id or namespace&OID&ISO");
  EXPECT_FALSE(ParseLinkOptions(Options(R"({"host":"::1","processing_id":"X"})"), "d").ok());
  EXPECT_FALSE(ParseLinkOptions(Options(R"({"host":"::1","timeout_s":0})"), "d").ok());
}

TEST(Hl7LinkOptions, DescriptorChecksFilesAndBuildsALink) {
  const DestinationDescriptor& d = Hl7Destination();
  EXPECT_EQ(d.type, "hl7v2");
  EXPECT_EQ(d.max_batch, 100u);
  const Status missing = d.check(
      Options(R"({"host":"engine.example","tls":{"ca_file":"/nonexistent/ca.pem"}})"),
      "destinations[2]");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.message().rfind("destinations[2].tls.ca_file", 0), 0u) << missing.message();
  auto link = d.make(Options(R"({"type":"hl7v2","host":"127.0.0.1","port":2575})"));
  ASSERT_TRUE(link.ok());
  EXPECT_EQ((*link)->Describe(), "mllp://127.0.0.1:2575");
}

}  // namespace
}  // namespace vg::hl7
