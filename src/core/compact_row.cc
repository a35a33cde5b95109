#include "vitalgate/core/compact_row.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace vg {
namespace {

constexpr std::uint8_t kHeadType = 0x03;
constexpr std::uint8_t kHeadDeviceTime = 0x04;
constexpr std::uint8_t kHeadDouble = 0x08;
// Integers up to 2^53 convert to double and back exactly.
constexpr double kExactInteger = 9007199254740992.0;
// Times a damaged row may not carry: outside the years 0001-9999 of RFC 3339.
constexpr std::int64_t kFirstMs = -62'135'596'800'000;
constexpr std::int64_t kLastMs = 253'402'300'799'999;

bool InRange(std::int64_t ms) { return ms >= kFirstMs && ms <= kLastMs; }

std::uint64_t Zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t Unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

void PutVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

// Differences are taken in unsigned arithmetic, so that no pair of values overflows.
std::int64_t Difference(std::uint64_t now, std::uint64_t before) {
  return static_cast<std::int64_t>(now - before);
}

class Cursor {
 public:
  Cursor(std::string_view body, std::size_t start) : body_(body), pos_(start) {}

  std::size_t offset() const { return pos_; }
  bool done() const { return pos_ == body_.size(); }

  Status Varint(std::uint64_t& v, const char* what) {
    const std::size_t start = pos_;
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= body_.size()) return Damaged(start, what);
      const auto b = static_cast<std::uint8_t>(body_[pos_++]);
      if (shift == 63 && b > 1) return Damaged(start, what);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return Status::Ok();
    }
    return Damaged(start, what);
  }

  Status Byte(std::uint8_t& b, const char* what) {
    if (pos_ >= body_.size()) return Damaged(pos_, what);
    b = static_cast<std::uint8_t>(body_[pos_++]);
    return Status::Ok();
  }

  Status Bytes(std::size_t n, std::string_view& out, const char* what) {
    if (n > body_.size() - pos_) return Damaged(pos_, what);
    out = body_.substr(pos_, n);
    pos_ += n;
    return Status::Ok();
  }

  static Status Damaged(std::size_t offset, const char* what) {
    return DataLoss("compact row: bad " + std::string(what) + " at byte " + std::to_string(offset));
  }

 private:
  std::string_view body_;
  std::size_t pos_;
};

// Text written into JSON strings without escaping must need none.
bool PlainText(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

void CompactRowEncoder::Begin(std::string& out) {
  strings_.clear();
  instance_hint_ = device_hint_ = metric_hint_ = unit_hint_ = 0;
  last_id_ = 0;
  last_ts_ = 0;
  out += kCompactRowVersion;
}

void CompactRowEncoder::AppendString(std::string& out, std::string_view s, std::size_t& hint) {
  auto same = [&](std::size_t i) {
    const Seen& seen = strings_[i];
    return seen.size == s.size() && std::memcmp(out.data() + seen.offset, s.data(), s.size()) == 0;
  };
  std::size_t found = strings_.size();
  if (hint < strings_.size() && same(hint)) {
    found = hint;
  } else {
    for (std::size_t i = 0; i < strings_.size(); ++i) {
      if (same(i)) {
        found = i;
        break;
      }
    }
  }
  PutVarint(out, found);
  if (found == strings_.size()) {
    PutVarint(out, s.size());
    strings_.push_back(
        Seen{static_cast<std::uint32_t>(out.size()), static_cast<std::uint32_t>(s.size())});
    out.append(s);
  }
  hint = found;
}

void CompactRowEncoder::Append(std::string& out, const ReadingText& t) {
  PutVarint(out, Zigzag(Difference(t.id, last_id_)));
  last_id_ = t.id;
  AppendString(out, t.instance, instance_hint_);
  AppendString(out, t.device, device_hint_);
  AppendString(out, t.metric, metric_hint_);
  AppendString(out, t.unit, unit_hint_);
  const bool integral = std::trunc(t.value) == t.value && std::fabs(t.value) <= kExactInteger &&
                        !(t.value == 0 && std::signbit(t.value));
  const bool device_time = (t.flags & kFlagClock) != 0 && t.device_ts_ms != 0;
  std::uint8_t head = static_cast<std::uint8_t>(t.type) & kHeadType;
  if (device_time) head |= kHeadDeviceTime;
  if (!integral) head |= kHeadDouble;
  out += static_cast<char>(head);
  out += static_cast<char>(t.flags & kShownFlags);
  if (integral) {
    PutVarint(out, Zigzag(static_cast<std::int64_t>(t.value)));
  } else {
    const auto bits = std::bit_cast<std::uint64_t>(t.value);
    for (int i = 0; i < 8; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  PutVarint(out, Zigzag(Difference(static_cast<std::uint64_t>(t.ts_ms),
                                   static_cast<std::uint64_t>(last_ts_))));
  last_ts_ = t.ts_ms;
  if (device_time) {
    PutVarint(out, Zigzag(Difference(static_cast<std::uint64_t>(t.device_ts_ms),
                                     static_cast<std::uint64_t>(t.ts_ms))));
  }
}

Result<std::string> ExpandCompactRow(std::string_view body, std::uint32_t count) {
  if (!IsCompactRow(body)) return Cursor::Damaged(0, "version");
  Cursor in(body, 1);
  std::vector<std::string_view> strings;
  std::string out;
  out.reserve(body.size() * 6);
  std::uint64_t id = 0;
  std::uint64_t ts = 0;
  auto string = [&](std::string_view& s, const char* what) -> Status {
    const std::size_t at = in.offset();
    std::uint64_t n = 0;
    VG_RETURN_IF_ERROR(in.Varint(n, what));
    if (n < strings.size()) {
      s = strings[n];
      return Status::Ok();
    }
    if (n > strings.size()) return Cursor::Damaged(at, what);
    std::uint64_t size = 0;
    VG_RETURN_IF_ERROR(in.Varint(size, what));
    VG_RETURN_IF_ERROR(in.Bytes(size, s, what));
    strings.push_back(s);
    return Status::Ok();
  };
  std::uint32_t readings = 0;
  while (!in.done()) {
    const std::size_t start = in.offset();
    ReadingText t;
    std::uint64_t v = 0;
    Status s = in.Varint(v, "id");
    if (!s.ok()) return s;
    id += static_cast<std::uint64_t>(Unzigzag(v));
    t.id = id;
    for (auto [field, what] : {std::pair<std::string_view*, const char*>{&t.instance, "instance"},
                               {&t.device, "device"},
                               {&t.metric, "metric"},
                               {&t.unit, "unit"}}) {
      s = string(*field, what);
      if (!s.ok()) return s;
    }
    if (!PlainText(t.instance) || !PlainText(t.metric) || !PlainText(t.unit)) {
      return Cursor::Damaged(start, "text in the reading");
    }
    std::uint8_t head = 0, flags = 0;
    if (!(s = in.Byte(head, "head")).ok()) return s;
    if ((head & ~(kHeadType | kHeadDeviceTime | kHeadDouble)) != 0 || (head & kHeadType) > 2) {
      return Cursor::Damaged(in.offset() - 1, "head");
    }
    if (!(s = in.Byte(flags, "flags")).ok()) return s;
    if ((flags & ~kShownFlags) != 0) return Cursor::Damaged(in.offset() - 1, "flags");
    t.type = static_cast<ValueType>(head & kHeadType);
    t.flags = flags;
    if ((head & kHeadDouble) != 0) {
      std::string_view raw;
      if (!(s = in.Bytes(8, raw, "value")).ok()) return s;
      std::uint64_t bits = 0;
      for (std::size_t i = 0; i < 8; ++i) {
        bits |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(raw[i])) << (8 * i);
      }
      t.value = std::bit_cast<double>(bits);
      if (!std::isfinite(t.value)) return Cursor::Damaged(in.offset() - 8, "value");
    } else {
      if (!(s = in.Varint(v, "value")).ok()) return s;
      t.value = static_cast<double>(Unzigzag(v));
    }
    if (!(s = in.Varint(v, "ts")).ok()) return s;
    ts += static_cast<std::uint64_t>(Unzigzag(v));
    t.ts_ms = static_cast<std::int64_t>(ts);
    if (!InRange(t.ts_ms)) return Cursor::Damaged(start, "ts");
    if ((head & kHeadDeviceTime) != 0) {
      if (!(s = in.Varint(v, "device_ts")).ok()) return s;
      t.device_ts_ms = static_cast<std::int64_t>(ts + static_cast<std::uint64_t>(Unzigzag(v)));
      if (t.device_ts_ms == 0 || !InRange(t.device_ts_ms) || (flags & kFlagClock) == 0) {
        return Cursor::Damaged(start, "device_ts");
      }
    }
    if (readings > 0) out += '\n';
    AppendReadingJson(out, t);
    ++readings;
  }
  if (readings != count) {
    return DataLoss("compact row: holds " + std::to_string(readings) +
                    " readings, its count says " + std::to_string(count));
  }
  return out;
}

}  // namespace vg
