// HL7 v2 over MLLP, the way hospital interface engines take device data: IHE PCD-01 (DEC,
// ORU^R01) for readings and NEWS2 scores, IHE PCD-04 (ACM, ORU^R40) for alarm events.
// docs/hl7.md describes every segment, the code tables and the retry rules.
//
// Four layers, each usable on its own:
//   - escaping and a segment writer (pure);
//   - rendering a DeliveryBatch into messages (pure; the message time is passed in);
//   - MLLP framing, a bounded frame reader and ACK parsing (pure);
//   - the MLLP link, a vg::RequestLink over TCP with TLS (plain TCP only to loopback).
// Pure functions are thread-safe. A link is owned and driven by one thread (destination.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "vitalgate/core/clock.h"
#include "vitalgate/core/options.h"
#include "vitalgate/core/status.h"
#include "vitalgate/forward/destination.h"

namespace vg {
namespace hl7 {

// ---------------------------------------------------------------------------------------------
// Escaping (HL7 v2.6 section 2.7.4/2.7.5)

// The encoding characters of a message (MSH-1 and MSH-2). vitalgate writes the defaults.
struct Delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
};

// Appends `text` as the content of one field, component or subcomponent: | ^ ~ \ & become
// \F\ \S\ \R\ \E\ \T\, control characters (0x00-0x1F, 0x7F; CR and LF included) become \Xhh\.
// Other bytes pass through unchanged (messages declare MSH-18 "UNICODE UTF-8"). The result
// never contains a delimiter, CR or LF outside an escape sequence.
void AppendEscaped(std::string& out, std::string_view text);
std::string Escape(std::string_view text);

// Reverses escaping for text a peer sent (e.g. an ACK's error text), with its delimiters.
// Lenient by design: formatting sequences (\H\ \N\ \.br\ ...) and unknown ones are dropped, an
// unterminated sequence is kept as written. Never fails.
std::string Unescape(std::string_view text, const Delimiters& delimiters = {});

// A component or subcomponent value for SegmentWriter: plain text, escaped when written, or
// text that is already encoded (e.g. subcomponents joined by JoinSubcomponents()).
class Part {
 public:
  Part(std::string_view text) : text_(text) {}  // NOLINT: implicit by design
  Part(const char* text) : text_(text) {}       // NOLINT: implicit by design
  Part(const std::string& text) : text_(text) {}  // NOLINT: implicit by design
  static Part Encoded(std::string_view encoded) {
    Part p(encoded);
    p.encoded_ = true;
    return p;
  }
  std::string_view text() const { return text_; }
  bool encoded() const { return encoded_; }

 private:
  std::string_view text_;
  bool encoded_ = false;
};

// "a&b&c" with every part escaped (or taken as encoded); trailing empty parts are dropped.
std::string JoinSubcomponents(std::initializer_list<Part> parts);

// Writes one segment straight into a message. Fields are numbered as in the standard (MSH-3 is
// field 3; MSH-1 and MSH-2 are written by the constructor) and must be set in increasing
// order; fields not set stay empty, trailing empty fields are not written.
class SegmentWriter {
 public:
  SegmentWriter(std::string& out, std::string_view segment_id);
  // REQUIRES: field greater than every field set before on this writer.
  SegmentWriter& Text(std::size_t field, std::string_view text);
  // Components joined by ^ (each escaped unless Part::Encoded); trailing empty ones dropped.
  SegmentWriter& Components(std::size_t field, std::initializer_list<Part> parts);
  // Repetitions joined by ~ (each escaped unless Part::Encoded); empty ones skipped.
  SegmentWriter& Repeats(std::size_t field, std::initializer_list<Part> parts);
  // Ends the segment (CR). REQUIRES: called once, last.
  void End();

 private:
  void MoveTo(std::size_t field);
  std::string& out_;
  std::size_t field_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Rendering (IHE PCD-01 and PCD-04; docs/hl7.md)

// The MSH and PID values an interface engine routes and matches on.
struct MessageOptions {
  std::string sending_application = "vitalgate";  // MSH-3
  std::string sending_facility;                   // MSH-4
  std::string receiving_application;              // MSH-5
  std::string receiving_facility;                 // MSH-6
  // PID-3.4: a namespace id, or "namespace&OID&ISO" (the & separates its subcomponents).
  std::string assigning_authority;
  std::string processing_id = "P";  // MSH-11: P production, T training, D debugging
};

// Profile identifiers written in MSH-21.
inline constexpr std::string_view kPcd01Profile =
    "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO";
inline constexpr std::string_view kPcd04Profile =
    "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO";

struct Message {
  std::string control_id;         // MSH-10: the same for the same content on every redelivery
  std::string_view type;          // "ORU^R01" or "ORU^R40" (for logs)
  std::string text;               // segments, each ended by CR; not framed
  std::vector<std::size_t> rows;  // indices of the batch rows this message carries
};

struct RenderedBatch {
  std::vector<Message> messages;  // in sending order
  // Rows that have no HL7 form because their body is broken (not a reading or alert event
  // object, unknown metric, bad time stamp): index and reason. Refused for good.
  std::vector<std::pair<std::size_t, std::string>> rejected;
  // Rows deliberately not sent (audit events): acknowledged without a message.
  std::vector<std::size_t> skipped;
};

// Renders a batch: readings of one patient become one ORU^R01 (one OBR per device and time
// stamp); an alert event becomes one ORU^R40, and a NEWS2 event additionally (or, for a score
// change without an alarm, only) an ORU^R01 with the scores. `now_ms` is MSH-7.
RenderedBatch RenderBatch(const DeliveryBatch& batch, const MessageOptions& options,
                          std::int64_t now_ms);

// The EUI-64 (16 upper-case hex digits) of a Bluetooth device address "C0:FF:EE:00:00:01":
// the 48-bit address with FFFE inserted after its third byte. nullopt when not an address.
std::optional<std::string> Eui64FromBluetoothAddress(std::string_view address);

// An HL7 DTM in UTC with milliseconds: "20261122050000.000+0000".
std::string FormatDtm(std::int64_t unix_ms);

// ---------------------------------------------------------------------------------------------
// MLLP (HL7 v2 Minimal Lower Layer Protocol) and acknowledgements

inline constexpr char kStartBlock = 0x0B;      // VT
inline constexpr char kEndBlock = 0x1C;        // FS
inline constexpr char kCarriageReturn = 0x0D;  // CR

// Appends VT message FS CR.
void AppendMllpFrame(std::string& out, std::string_view message);

// Splits a byte stream into MLLP frames. CR and LF between frames are tolerated; any other byte
// outside a frame, a VT inside one, FS not followed by CR, or a message longer than the bound
// is an error naming the byte offset in the stream. After an error the reader stays failed.
class MllpReader {
 public:
  explicit MllpReader(std::size_t max_message_bytes = 1 << 20) : max_(max_message_bytes) {}
  Status Feed(std::string_view bytes);
  // The next complete message (framing removed), oldest first.
  std::optional<std::string> Next();
  // True while a frame has started and not ended.
  bool InFrame() const { return state_ != State::kIdle; }

 private:
  enum class State : std::uint8_t { kIdle, kBody, kEnd, kFailed };
  std::size_t max_;
  State state_ = State::kIdle;
  std::uint64_t offset_ = 0;
  std::string current_;
  std::vector<std::string> complete_;
  std::size_t next_ = 0;
  Status failure_;
};

// MSA-1 (HL7 table 0008): original mode AA/AE/AR, enhanced mode CA/CE/CR.
enum class AckCode : std::uint8_t { kAA, kAE, kAR, kCA, kCE, kCR };
std::string_view Name(AckCode code);

struct Ack {
  AckCode code = AckCode::kAA;
  std::string control_id;  // MSA-2
  // What the receiver said, unescaped: ERR-8 user message, else ERR-7, ERR-3 text, ERR-1
  // (v2.4 style) text, else MSA-3. Empty when it said nothing.
  std::string text;
};

// Parses an acknowledgement message (MSH with any delimiters, MSA, optional ERR). Errors say
// which segment or field is missing or wrong.
Result<Ack> ParseAck(std::string_view message);

// ---------------------------------------------------------------------------------------------
// The MLLP link

struct LinkOptions {
  std::string host;
  std::uint16_t port = 2575;
  bool tls = false;
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
  std::string tls_min_version = "1.2";  // "1.2" or "1.3"
  MessageOptions message;
  std::chrono::milliseconds timeout{30000};  // connect, and send plus ACK of one message
  int max_retries = 3;  // AE/CE answers to one message that are retried; one more is refused
  std::size_t max_ack_bytes = 1 << 20;
  std::string path = "destinations[]";  // names the config object in messages
};

// The type-specific keys of destinations of type "hl7v2", and of their "tls" object.
std::span<const OptionSpec> LinkOptionSpecs();
std::span<const OptionSpec> TlsOptionSpecs();

// Reads validated options (defaults filled in) into LinkOptions; validates and fills "tls".
Result<LinkOptions> ParseLinkOptions(const nlohmann::json& options, std::string_view path);


// A link that sends one message at a time and waits for its ACK (docs/hl7.md, "Delivery").
// `clock` gives MSH-7 and must outlive the link.
std::unique_ptr<RequestLink> MakeMllpLink(LinkOptions options, const Clock& clock);

}  // namespace hl7

// The destination type "hl7v2" (docs/hl7.md): options, checks and the link factory.
const DestinationDescriptor& Hl7Destination();

}  // namespace vg
