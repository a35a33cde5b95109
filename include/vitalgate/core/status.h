// Status and Result<T>: errors as values.
//
// Every fallible call in vitalgate returns a Status or a Result<T>; no exception crosses a module
// boundary. Codes carry retry meaning in the Abseil sense:
//   kInvalidArgument     the input (config, CLI, device bytes) was wrong; retrying will not help.
//   kNotFound            a named thing (file, key, patient) does not exist.
//   kFailedPrecondition  the system is in the wrong state; fix the state first.
//   kPermissionDenied    a file or resource has unsafe or insufficient permissions.
//   kUnavailable         transient (network, broker, device gone); retry with backoff.
//   kResourceExhausted   a bound was reached (queue full, disk full).
//   kDataLoss            stored data is damaged.
//   kInternal            a bug or an unexpected environment failure.
// Thread-safety: value types; distinct objects may be used from different threads freely.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vg {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kFailedPrecondition,
  kPermissionDenied,
  kUnavailable,
  kResourceExhausted,
  kDataLoss,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>", for adding the file or key path.
  Status WithContext(std::string_view context) const;

  // Exit code for the CLI: 0 ok, 2 when the input was wrong, 1 when the environment failed.
  int ExitCode() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
inline Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
inline Status FailedPrecondition(std::string msg) {
  return {StatusCode::kFailedPrecondition, std::move(msg)};
}
inline Status PermissionDenied(std::string msg) { return {StatusCode::kPermissionDenied, std::move(msg)}; }
inline Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
inline Status ResourceExhausted(std::string msg) {
  return {StatusCode::kResourceExhausted, std::move(msg)};
}
inline Status DataLoss(std::string msg) { return {StatusCode::kDataLoss, std::move(msg)}; }
inline Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

// A value or the Status explaining why there is none. Shaped so it can become std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : data_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(data_).ok() && "Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok()
  const Status& status() const { return std::get<Status>(data_); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace vg

// Propagates a non-ok Status from an expression returning Status.
#define VG_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::vg::Status vg_status_ = (expr);       \
    if (!vg_status_.ok()) return vg_status_; \
  } while (false)
