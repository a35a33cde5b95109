// Who may use the local HTTP endpoints over HTTPS: users of HTTP Basic, kept in a users file
// as `name:hash` lines with yescrypt or bcrypt hashes made by crypt(3) (libxcrypt), and the
// rate limit of failed logins per client address.
//
// The parsing functions are pure. HashPassword/VerifyPassword are CPU-heavy on purpose (tens
// of milliseconds): never call them on the I/O thread. LoginLimiter is not thread-safe (the
// HTTP server uses it on the I/O thread only).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vitalgate/core/status.h"

namespace vg {

struct HttpUser {
  std::string name;
  std::string hash;  // "$y$..." (yescrypt) or "$2b$..." (bcrypt)
};

// 1-64 of [A-Za-z0-9._@-].
bool IsValidUserName(std::string_view name);

// Parses a users file: one `name:hash` per line; blank lines and lines starting with '#' are
// skipped. Errors name `source`, the line and what was expected.
Result<std::vector<HttpUser>> ParseUsersFile(std::string_view text, std::string_view source);

// Reads and parses the file; it must be a secret file (mode 0600 or stricter).
Result<std::vector<HttpUser>> LoadUsersFile(const std::string& path);

// The users file with `user`'s line replaced or added, other lines kept as they were.
std::string WithUser(std::string_view text, const HttpUser& user);

// A fresh crypt(3) hash of `password`; scheme "yescrypt" (default cost) or "bcrypt".
Result<std::string> HashPassword(std::string_view password, std::string_view scheme);

// True if `password` matches `hash` (compared in constant time).
bool VerifyPassword(std::string_view password, const std::string& hash);

// "Basic <base64(user:password)>" -> {user, password}; none for anything else.
std::optional<std::pair<std::string, std::string>> ParseBasicAuthorization(std::string_view value);

// Failed logins per client address: `limit` failures within `window_ms` lock the address out
// until the oldest of them leaves the window. Remembers at most `max_addresses` addresses
// (the least recently failing one is forgotten first).
class LoginLimiter {
 public:
  explicit LoginLimiter(int limit = 5, std::int64_t window_ms = 60'000,
                        std::size_t max_addresses = 4096);
  // Milliseconds until `address` may try again; 0: it may now.
  std::int64_t RetryAfterMs(const std::string& address, std::int64_t now_ms);
  // Records a failed login; true when this failure is the one that locks the address out.
  bool RecordFailure(const std::string& address, std::int64_t now_ms);

 private:
  void Expire(std::deque<std::int64_t>& failures, std::int64_t now_ms) const;

  int limit_;
  std::int64_t window_ms_;
  std::size_t max_addresses_;
  std::map<std::string, std::deque<std::int64_t>> failures_;
};

}  // namespace vg
