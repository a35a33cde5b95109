// Pure pieces of the `ble` transport, kept apart from D-Bus so they can be tested byte by byte:
// address and object path rules of BlueZ, 128-bit UUIDs, the Glucose Record Access Control Point
// (RACP, characteristic 2A52) requests and responses, the glucose record sequence number, and
// the small state file that remembers the last glucose record fetched.
//
// Everything here is a function of its arguments except LoadBleState/SaveBleState, which read
// and write one file through the FileSystem they are given. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/core/file_system.h"
#include "vitalgate/core/status.h"

namespace vg::ble {

inline constexpr std::uint16_t kUuidBatteryLevel = 0x2A19;
inline constexpr std::uint16_t kUuidGlucoseMeasurement = 0x2A18;
inline constexpr std::uint16_t kUuidRacp = 0x2A52;
inline constexpr std::uint16_t kUuidCurrentTime = 0x2A2B;

// "AA:BB:CC:DD:EE:FF": six pairs of hex digits (either case) separated by colons.
bool IsValidAddress(std::string_view address);
// Upper-case form, as BlueZ reports and names devices. REQUIRES: IsValidAddress(address).
std::string CanonicalAddress(std::string_view address);
// An adapter name usable as a D-Bus object path element ("hci0"): [A-Za-z0-9_]+.
bool IsValidAdapterName(std::string_view adapter);
// "system", or a D-Bus server address such as "unix:path=/run/x" (transport ':' key=value...).
bool IsValidBusAddress(std::string_view bus);

// "/org/bluez/hci0".
std::string AdapterObjectPath(std::string_view adapter);
// "/org/bluez/hci0/dev_C0_FF_EE_00_00_01": BlueZ's path for a device on an adapter.
// REQUIRES: IsValidAddress(address), IsValidAdapterName(adapter).
std::string DeviceObjectPath(std::string_view adapter, std::string_view address);
// "ble-C0_FF_EE_00_00_01.state": the state file of one device. REQUIRES: IsValidAddress.
std::string StateFileName(std::string_view address);

// The 16-bit UUID of a 128-bit SIG UUID "0000xxxx-0000-1000-8000-00805f9b34fb" (any case);
// nullopt for any other UUID (vendor-specific ones are not ours).
std::optional<std::uint16_t> Uuid16From128(std::string_view uuid);

// GattCharacteristic1.Flags, reduced to what the transport uses.
struct CharacteristicFlags {
  bool read = false;
  bool write = false;  // "write" (with response); RACP needs it
  bool notify = false;
  bool indicate = false;
};
CharacteristicFlags ParseCharacteristicFlags(std::span<const std::string> flags);

// RACP (Glucose Service 1.0, 3.2.7 / GATT Specification Supplement "Record Access Control
// Point"): "report stored records" with operator "all records" when nothing was seen yet, else
// "greater than or equal to" with filter type 0x01 (sequence number) and a uint16 LE operand.
std::vector<std::uint8_t> RacpReportStoredRecords(std::optional<std::uint16_t> from_sequence);

enum class RacpOpCode : std::uint8_t {
  kReportStoredRecords = 0x01,
  kDeleteStoredRecords = 0x02,
  kAbortOperation = 0x03,
  kReportNumberOfRecords = 0x04,
  kNumberOfRecordsResponse = 0x05,
  kResponseCode = 0x06,
};

enum class RacpResponseCode : std::uint8_t {
  kSuccess = 0x01,
  kOpCodeNotSupported = 0x02,
  kInvalidOperator = 0x03,
  kOperatorNotSupported = 0x04,
  kInvalidOperand = 0x05,
  kNoRecordsFound = 0x06,
  kAbortUnsuccessful = 0x07,
  kProcedureNotCompleted = 0x08,
  kOperandNotSupported = 0x09,
};

// One indication on the RACP from the device.
struct RacpIndication {
  RacpOpCode op = RacpOpCode::kResponseCode;
  // kResponseCode: the request op code answered and the result (raw: may be outside the enum).
  std::uint8_t request_op = 0;
  std::uint8_t response = 0;
  // kNumberOfRecordsResponse: the count.
  std::uint16_t count = 0;
};
// Accepts the two server-to-client op codes; anything else (including a response with a
// non-null operator or a short value) is InvalidArgument naming the byte offset.
Result<RacpIndication> ParseRacpIndication(std::span<const std::uint8_t> value);
// "success", "no records found", ..., "response code 0x2a" for unknown ones.
std::string RacpResponseName(std::uint8_t code);

// Bytes 1-2 (little-endian) of a Glucose Measurement (2A18) value: the record's sequence
// number; nullopt when the value is too short to carry one.
std::optional<std::uint16_t> GlucoseSequenceNumber(std::span<const std::uint8_t> value);

// What survives a gateway restart for one BLE device.
struct BleState {
  std::optional<std::uint16_t> glucose_last_sequence;  // highest 2A18 sequence number seen
};

// Moves the stored-record position past a glucose record just handed to the pipeline.
// `may_be_dropped`: the pipeline was saturated, so the record may not have been kept; the
// position then stays where it is (`held` is set and keeps it there for the rest of the
// connection), and the record and everything after it are fetched again at the next
// connection: a duplicate at worst, never a loss. Returns true when the position moved.
bool AdvanceGlucosePosition(BleState& state, std::optional<std::uint16_t> seq,
                            bool may_be_dropped, bool& held);

// Reads the state file. A missing file is an empty state (Ok). A file for another address, or
// one that is not what SaveBleState writes (damaged, cut short, too large), is DataLoss (the
// caller decides; the transport logs it and starts from an empty state, which re-fetches rather
// than loses records). Unavailable when the file cannot be read.
Result<BleState> LoadBleState(FileSystem& fs, const std::string& path, std::string_view address);
// Writes the state file with FileSystem::WriteFileAtomically (a temporary file written,
// fsync'ed and renamed over the old one, the directory fsync'ed), mode 0600.
Status SaveBleState(FileSystem& fs, const std::string& path, std::string_view address,
                    const BleState& state);

}  // namespace vg::ble
