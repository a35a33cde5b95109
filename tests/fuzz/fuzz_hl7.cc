// libFuzzer target: everything of the hl7v2 destination that sees bytes it did not make: the
// MLLP frame reader and ACK parser (the interface engine's answers), unescaping of peer text,
// and escaping/rendering of arbitrary field content (device ids, configured names, messages).
#include <cstdint>
#include <string>
#include <string_view>

#include "../unit/forward/hl7_test_util.h"
#include "vitalgate/forward/hl7.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // Escaping is total and reversible.
  const std::string escaped = vg::hl7::Escape(text);
  if (!vg::hl7::testing::OnlySafeCharacters(escaped)) __builtin_trap();
  if (vg::hl7::Unescape(escaped) != text) __builtin_trap();
  (void)vg::hl7::Unescape(text);

  // The receiver's bytes, split at an input-chosen point, through the bounded reader.
  vg::hl7::MllpReader reader(4096);
  const std::size_t cut = size == 0 ? 0 : data[0] % size;
  if (reader.Feed(text.substr(0, cut)).ok() && reader.Feed(text.substr(cut)).ok()) {
    while (auto message = reader.Next()) {
      if (message->size() > 4096) __builtin_trap();
      auto ack = vg::hl7::ParseAck(*message);
      if (ack.ok() && ack->control_id.empty()) __builtin_trap();
    }
  }
  (void)vg::hl7::ParseAck(text);

  // Arbitrary content in every place a row puts text into a message.
  vg::OutboxRow reading{1, "p-001", {}, 0};
  reading.body = std::string(R"({"id":"r-1","device":)") + "\"" + std::string(text.substr(0, 64)) +
                 R"(","metric":"spo2","value":97,"ts":"2026-11-22T05:00:00.000Z"})";
  vg::OutboxRow raw{2, std::string(text.substr(0, 32)), std::string(text), 0};
  vg::DeliveryBatch batch;
  batch.patient = std::string(text.substr(0, 32));
  batch.rows = {&reading, &raw};
  vg::hl7::MessageOptions options;
  options.sending_application = std::string(text.substr(0, 16));
  options.assigning_authority = std::string(text.substr(0, 24));
  for (const auto kind : {vg::DeliveryBatch::Kind::kReadings, vg::DeliveryBatch::Kind::kAlert}) {
    batch.kind = kind;
    const vg::hl7::RenderedBatch out = vg::hl7::RenderBatch(batch, options, 0);
    for (const vg::hl7::Message& m : out.messages) {
      // Every segment ends with CR and no raw LF or start/end block reaches the wire.
      if (m.text.empty() || m.text.back() != '\r') __builtin_trap();
      for (const char c : m.text) {
        if (c == '\n' || c == vg::hl7::kStartBlock || c == vg::hl7::kEndBlock) __builtin_trap();
      }
    }
  }
  return 0;
}
