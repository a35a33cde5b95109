#include "gatt_fields.h"

#include <cmath>

#include "vitalgate/core/timefmt.h"

namespace vg::gatt {
namespace {

// "user_0".."user_254" as static text, so status words stay views of immutable storage.
struct UserWords {
  std::array<std::array<char, 8>, 255> text{};
  std::array<std::uint8_t, 255> size{};
};

constexpr UserWords MakeUserWords() {
  UserWords w;
  for (unsigned id = 0; id < 255; ++id) {
    auto& t = w.text[id];
    std::size_t n = 0;
    for (char c : {'u', 's', 'e', 'r', '_'}) t[n++] = c;
    if (id >= 100) t[n++] = static_cast<char>('0' + id / 100);
    if (id >= 10) t[n++] = static_cast<char>('0' + id / 10 % 10);
    t[n++] = static_cast<char>('0' + id % 10);
    w.size[id] = static_cast<std::uint8_t>(n);
  }
  return w;
}

constexpr UserWords kUserWords = MakeUserWords();

bool IsLeap(unsigned y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(unsigned y, unsigned m) {
  constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

std::uint8_t ByteReader::U8() { return data_[pos_++]; }

std::uint16_t ByteReader::U16() {
  const auto v = static_cast<std::uint16_t>(data_[pos_] | (data_[pos_ + 1] << 8));
  pos_ += 2;
  return v;
}

std::uint32_t ByteReader::U24() {
  const std::uint32_t v = static_cast<std::uint32_t>(data_[pos_]) |
                          (static_cast<std::uint32_t>(data_[pos_ + 1]) << 8) |
                          (static_cast<std::uint32_t>(data_[pos_ + 2]) << 16);
  pos_ += 3;
  return v;
}

std::uint32_t ByteReader::U32() {
  const std::uint32_t v = static_cast<std::uint32_t>(data_[pos_]) |
                          (static_cast<std::uint32_t>(data_[pos_ + 1]) << 8) |
                          (static_cast<std::uint32_t>(data_[pos_ + 2]) << 16) |
                          (static_cast<std::uint32_t>(data_[pos_ + 3]) << 24);
  pos_ += 4;
  return v;
}

std::span<const std::uint8_t> ByteReader::Take(std::size_t n) {
  const auto out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

DateTime ParseDateTime(std::span<const std::uint8_t> bytes) {
  const unsigned year = static_cast<unsigned>(bytes[0] | (bytes[1] << 8));
  const unsigned month = bytes[2];
  const unsigned day = bytes[3];
  const unsigned hours = bytes[4];
  const unsigned minutes = bytes[5];
  const unsigned seconds = bytes[6];
  DateTime dt;
  // 0 means "not known" for year, month and day; everything else must be in its range
  // (1582..9999, 1..12, 1..31, 0..23, 0..59, 0..59; no leap second in this type).
  const bool bad_year = year != 0 && (year < 1582 || year > 9999);
  const bool bad_month = month > 12;
  const bool bad_day =
      day > (year != 0 && month != 0 && !bad_year && !bad_month ? DaysInMonth(year, month) : 31u);
  if (bad_year || bad_month || bad_day || hours > 23 || minutes > 59 || seconds > 59) {
    dt.kind = DateTime::Kind::kInvalid;
    return dt;
  }
  if (year == 0 || month == 0 || day == 0) {
    dt.kind = DateTime::Kind::kUnknown;
    return dt;
  }
  dt.kind = DateTime::Kind::kValid;
  const std::int64_t days = DaysFromCivil(year, month, day);
  dt.local_ms = ((days * 24 + hours) * 60 + minutes) * 60'000 + std::int64_t{seconds} * 1000;
  return dt;
}

void GattFrame::Add(Metric metric, double value) {
  if (measurement_count >= kMaxMeasurements || !std::isfinite(value)) return;
  measurements[measurement_count++] = Measurement{metric, value};
}

void GattFrame::AddStatus(std::string_view word) {
  if (status_count < kMaxStatus) status[status_count++] = word;
}

void GattFrame::Fail(std::size_t offset, std::string message) {
  if (error) return;  // the first problem is the one to fix
  error = DecodeError{offset, std::move(message), "", false};
}

void GattFrame::Warn(std::size_t offset, std::string message) {
  warnings.push_back(DecodeError{offset, std::move(message), "", true});
}

DecodedValue GattFrame::ValueAt(std::size_t i) const {
  DecodedValue v;
  v.metric = measurements[i].metric;
  v.value = measurements[i].value;
  v.ts_ms = ts_ms;
  v.flags = flags;
  v.record_seq = record_seq;
  for (std::size_t s = 0; s < status_count; ++s) v.AddStatus(status[s]);
  return v;
}

bool Need(const ByteReader& r, std::size_t size, std::string_view field, GattFrame& frame) {
  if (r.Has(size)) return true;
  frame.Fail(r.offset(), std::string(field) + " is missing or cut short (the value is " +
                             std::to_string(r.offset() + r.remaining()) + " bytes long)");
  return false;
}

bool ReadTimeStamp(ByteReader& r, bool present, TimeStampField& out, GattFrame& frame) {
  if (!present) return true;
  if (!Need(r, 7, "time stamp (7 bytes)", frame)) return false;
  out.offset = r.offset();
  out.value = ParseDateTime(r.Take(7));
  return true;
}

void CheckReservedFlags(std::uint8_t flags, std::uint8_t reserved_mask, GattFrame& frame) {
  if ((flags & reserved_mask) != 0) {
    frame.Warn(0, "reserved flag bits are set; ignored as the specification requires");
  }
}

void CheckTrailing(const ByteReader& r, GattFrame& frame) {
  if (r.remaining() > 0) {
    frame.Warn(r.offset(), std::to_string(r.remaining()) +
                               " byte(s) after the last field the flags announce; ignored");
  }
}

void ApplyDeviceTime(const DateTime& dt, std::int32_t offset_minutes, std::size_t offset,
                     const TimeOptions& options, GattFrame& frame) {
  if (!options.use_device_time) return;
  switch (dt.kind) {
    case DateTime::Kind::kValid: {
      const std::int64_t local = dt.local_ms + std::int64_t{offset_minutes} * 60'000;
      frame.ts_ms = options.zone.LocalToUtc(local);
      frame.flags |= kFlagDeviceTime;
      break;
    }
    case DateTime::Kind::kUnknown:
      frame.AddStatus("time_unknown");
      break;
    case DateTime::Kind::kInvalid:
      frame.Warn(offset, "date/time field out of range; device time ignored");
      break;
  }
}

std::string_view UserIdWord(std::uint8_t user) {
  if (user == 255) return "user_unknown";
  return {kUserWords.text[user].data(), kUserWords.size[user]};
}

}  // namespace vg::gatt
