#include "ble_protocol.h"

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "vitalgate/core/hex.h"

namespace vg::ble {
namespace {

constexpr std::string_view kSigBaseSuffix = "-0000-1000-8000-00805f9b34fb";
constexpr std::string_view kStateFormat = "vitalgate-ble-state/1";

}  // namespace

bool IsValidAddress(std::string_view a) {
  if (a.size() != 17) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (i % 3 == 2) {
      if (a[i] != ':') return false;
    } else if (HexDigit(a[i]) < 0) {
      return false;
    }
  }
  return true;
}

std::string CanonicalAddress(std::string_view address) {
  std::string out(address);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsValidAdapterName(std::string_view adapter) {
  if (adapter.empty() || adapter.size() > 64) return false;
  for (char c : adapter) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

bool IsValidBusAddress(std::string_view bus) {
  if (bus == "system") return true;
  // D-Bus server addresses: "transport:key=value,key=value" (several separated by ';').
  const std::size_t colon = bus.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    if (!std::isalnum(static_cast<unsigned char>(bus[i])) && bus[i] != '-') return false;
  }
  return bus.find('=', colon) != std::string_view::npos;
}

std::string AdapterObjectPath(std::string_view adapter) {
  return "/org/bluez/" + std::string(adapter);
}

std::string DeviceObjectPath(std::string_view adapter, std::string_view address) {
  std::string path = AdapterObjectPath(adapter) + "/dev_";
  for (char c : CanonicalAddress(address)) path += c == ':' ? '_' : c;
  return path;
}

std::string StateFileName(std::string_view address) {
  std::string name = "ble-";
  for (char c : CanonicalAddress(address)) name += c == ':' ? '_' : c;
  return name + ".state";
}

std::optional<std::uint16_t> Uuid16From128(std::string_view uuid) {
  if (uuid.size() != 36 || uuid.substr(0, 4) != "0000") return std::nullopt;
  for (std::size_t i = 0; i < kSigBaseSuffix.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(uuid[8 + i])));
    if (c != kSigBaseSuffix[i]) return std::nullopt;
  }
  unsigned value = 0;
  for (std::size_t i = 4; i < 8; ++i) {
    const int h = HexDigit(uuid[i]);
    if (h < 0) return std::nullopt;
    value = value * 16 + static_cast<unsigned>(h);
  }
  return static_cast<std::uint16_t>(value);
}

CharacteristicFlags ParseCharacteristicFlags(std::span<const std::string> flags) {
  CharacteristicFlags f;
  for (const std::string& s : flags) {
    // BlueZ also reports "encrypt-read", "secure-write", ...: access requirements, not
    // operations; the operation itself is always listed on its own.
    if (s == "read") f.read = true;
    if (s == "write") f.write = true;
    if (s == "notify") f.notify = true;
    if (s == "indicate") f.indicate = true;
  }
  return f;
}

std::vector<std::uint8_t> RacpReportStoredRecords(std::optional<std::uint16_t> from_sequence) {
  constexpr std::uint8_t kOperatorAll = 0x01;
  constexpr std::uint8_t kOperatorGreaterOrEqual = 0x03;
  constexpr std::uint8_t kFilterSequenceNumber = 0x01;
  const auto op = static_cast<std::uint8_t>(RacpOpCode::kReportStoredRecords);
  if (!from_sequence) return {op, kOperatorAll};
  return {op, kOperatorGreaterOrEqual, kFilterSequenceNumber,
          static_cast<std::uint8_t>(*from_sequence & 0xFF),
          static_cast<std::uint8_t>(*from_sequence >> 8)};
}

Result<RacpIndication> ParseRacpIndication(std::span<const std::uint8_t> v) {
  if (v.empty()) return InvalidArgument("RACP byte 0: empty value");
  if (v.size() < 2) return InvalidArgument("RACP byte 1: operator missing");
  if (v[1] != 0x00) return InvalidArgument("RACP byte 1: a response must have the null operator");
  RacpIndication out;
  switch (v[0]) {
    case static_cast<std::uint8_t>(RacpOpCode::kResponseCode):
      if (v.size() < 4) {
        return InvalidArgument("RACP byte " + std::to_string(v.size()) +
                               ": response code value needs 2 bytes");
      }
      out.op = RacpOpCode::kResponseCode;
      out.request_op = v[2];
      out.response = v[3];
      return out;
    case static_cast<std::uint8_t>(RacpOpCode::kNumberOfRecordsResponse):
      if (v.size() < 4) {
        return InvalidArgument("RACP byte " + std::to_string(v.size()) +
                               ": number of records needs 2 bytes");
      }
      out.op = RacpOpCode::kNumberOfRecordsResponse;
      out.count = static_cast<std::uint16_t>(v[2] | (v[3] << 8));
      return out;
    default:
      return InvalidArgument("RACP byte 0: op code " + std::to_string(v[0]) + " is not a response");
  }
}

std::string RacpResponseName(std::uint8_t code) {
  switch (static_cast<RacpResponseCode>(code)) {
    case RacpResponseCode::kSuccess:
      return "success";
    case RacpResponseCode::kOpCodeNotSupported:
      return "op code not supported";
    case RacpResponseCode::kInvalidOperator:
      return "invalid operator";
    case RacpResponseCode::kOperatorNotSupported:
      return "operator not supported";
    case RacpResponseCode::kInvalidOperand:
      return "invalid operand";
    case RacpResponseCode::kNoRecordsFound:
      return "no records found";
    case RacpResponseCode::kAbortUnsuccessful:
      return "abort unsuccessful";
    case RacpResponseCode::kProcedureNotCompleted:
      return "procedure not completed";
    case RacpResponseCode::kOperandNotSupported:
      return "operand not supported";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "response code 0x%02x", static_cast<unsigned>(code));
  return buf;
}

std::optional<std::uint16_t> GlucoseSequenceNumber(std::span<const std::uint8_t> value) {
  if (value.size() < 3) return std::nullopt;
  return static_cast<std::uint16_t>(value[1] | (value[2] << 8));
}

bool AdvanceGlucosePosition(BleState& state, std::optional<std::uint16_t> seq,
                            bool may_be_dropped, bool& held) {
  if (may_be_dropped) held = true;
  if (held || !seq) return false;
  if (state.glucose_last_sequence && *seq <= *state.glucose_last_sequence) return false;
  state.glucose_last_sequence = seq;
  return true;
}

Result<BleState> LoadBleState(FileSystem& fs, const std::string& path,
                              std::string_view address) {
  // The file is a few dozen bytes; anything large is not ours.
  auto text = fs.ReadFile(path, 4096);
  if (!text.ok()) {
    switch (text.status().code()) {
      case StatusCode::kNotFound:
        return BleState{};
      case StatusCode::kResourceExhausted:
        return DataLoss(text.status().message());
      default:
        return text.status();
    }
  }
  const auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(path + ": not valid JSON");
  const auto format = j.find("format");
  if (format == j.end() || !format->is_string() || *format != kStateFormat) {
    return DataLoss(path + ": \"format\" is not \"" + std::string(kStateFormat) + "\"");
  }
  const auto addr = j.find("address");
  if (addr == j.end() || !addr->is_string() || *addr != CanonicalAddress(address)) {
    return DataLoss(path + ": written for another device address");
  }
  BleState state;
  const auto seq = j.find("glucose_last_sequence");
  if (seq != j.end() && !seq->is_null()) {
    if (!seq->is_number_unsigned() || seq->get<std::uint64_t>() > 0xFFFF) {
      return DataLoss(path + ": glucose_last_sequence is not a number from 0 to 65535");
    }
    state.glucose_last_sequence = seq->get<std::uint16_t>();
  }
  return state;
}

Status SaveBleState(FileSystem& fs, const std::string& path, std::string_view address,
                    const BleState& state) {
  nlohmann::json j = {{"format", kStateFormat}, {"address", CanonicalAddress(address)}};
  if (state.glucose_last_sequence) {
    j["glucose_last_sequence"] = *state.glucose_last_sequence;
  } else {
    j["glucose_last_sequence"] = nullptr;
  }
  return fs.WriteFileAtomically(path, j.dump() + "\n", 0600);
}

}  // namespace vg::ble
