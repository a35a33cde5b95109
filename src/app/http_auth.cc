#include "vitalgate/app/http_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "vitalgate/core/options.h"
#include "vitalgate/forward/envelope.h"

namespace vg {
namespace {

bool IsHashOfKnownScheme(std::string_view hash) {
  for (std::string_view prefix : {"$y$", "$2b$", "$2y$"}) {
    if (hash.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// crypt_r's working memory is large (about 32 KiB): keep it off the stack.
std::string CryptR(std::string_view phrase, const std::string& setting) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const std::string p(phrase);
  const char* out = ::crypt_r(p.c_str(), setting.c_str(), data.get());
  std::string result = out == nullptr ? std::string() : std::string(out);
  ::OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return result;
}

}  // namespace

bool IsValidUserName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
  });
}

Result<std::vector<HttpUser>> ParseUsersFile(std::string_view text, std::string_view source) {
  std::vector<HttpUser> users;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = std::string(source) + ":" + std::to_string(line_no);
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument(where + ": expected name:hash (as `vitalgate passwd` writes it)");
    }
    HttpUser u{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))};
    if (!IsValidUserName(u.name)) {
      return InvalidArgument(where + ": user name must be 1-64 of [A-Za-z0-9._@-]");
    }
    if (!IsHashOfKnownScheme(u.hash) || u.hash.find_first_of(" \t:") != std::string::npos) {
      return InvalidArgument(where + ": user \"" + u.name +
                             "\": expected a yescrypt ($y$) or bcrypt ($2b$) hash");
    }
    for (const HttpUser& other : users) {
      if (other.name == u.name) return InvalidArgument(where + ": user \"" + u.name + "\" again");
    }
    users.push_back(std::move(u));
  }
  return users;
}

Result<std::vector<HttpUser>> LoadUsersFile(const std::string& path) {
  VG_RETURN_IF_ERROR(CheckFile(path, FileCheck::kSecret, "http.users_file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("http.users_file: " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Unavailable("http.users_file: " + path + ": read error");
  return ParseUsersFile(ss.str(), "http.users_file: " + path);
}

std::string WithUser(std::string_view text, const HttpUser& user) {
  std::string out;
  bool replaced = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, user.name.size() + 1) == user.name + ":") {
      if (!replaced) out += user.name + ":" + user.hash + "\n";
      replaced = true;
      continue;
    }
    out.append(line);
    out += '\n';
  }
  if (!replaced) out += user.name + ":" + user.hash + "\n";
  return out;
}

Result<std::string> HashPassword(std::string_view password, std::string_view scheme) {
  const char* prefix = nullptr;
  if (scheme == "yescrypt") prefix = "$y$";
  if (scheme == "bcrypt") prefix = "$2b$";
  if (prefix == nullptr) {
    return InvalidArgument("passwd: unknown scheme \"" + std::string(scheme) + "\" (yescrypt or bcrypt)");
  }
  if (password.find('\0') != std::string_view::npos) {
    return InvalidArgument("passwd: the password must not contain a NUL byte");
  }
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // count 0: the library's default cost; no random bytes given: it reads the OS's own.
  if (::crypt_gensalt_rn(prefix, 0, nullptr, 0, setting, sizeof setting) == nullptr) {
    return Unavailable(std::string("passwd: crypt_gensalt: ") + std::strerror(errno));
  }
  std::string hash = CryptR(password, setting);
  if (hash.empty() || hash[0] == '*') return Unavailable("passwd: crypt(3) failed to hash the password");
  return hash;
}

bool VerifyPassword(std::string_view password, const std::string& hash) {
  if (!IsHashOfKnownScheme(hash) || password.find('\0') != std::string_view::npos) return false;
  const std::string computed = CryptR(password, hash);
  return computed.size() == hash.size() && !computed.empty() && computed[0] != '*' &&
         ::CRYPTO_memcmp(computed.data(), hash.data(), hash.size()) == 0;
}

std::optional<std::pair<std::string, std::string>> ParseBasicAuthorization(std::string_view value) {
  constexpr std::string_view kScheme = "basic ";
  if (value.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view token = value.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  auto bytes = Base64Decode(token);
  if (!bytes.ok()) return std::nullopt;
  const std::string decoded(bytes->begin(), bytes->end());
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded.substr(0, colon), decoded.substr(colon + 1));
}

LoginLimiter::LoginLimiter(int limit, std::int64_t window_ms, std::size_t max_addresses)
    : limit_(limit), window_ms_(window_ms), max_addresses_(max_addresses) {}

void LoginLimiter::Expire(std::deque<std::int64_t>& failures, std::int64_t now_ms) const {
  while (!failures.empty() && now_ms - failures.front() >= window_ms_) failures.pop_front();
}

std::int64_t LoginLimiter::RetryAfterMs(const std::string& address, std::int64_t now_ms) {
  auto it = failures_.find(address);
  if (it == failures_.end()) return 0;
  Expire(it->second, now_ms);
  if (it->second.empty()) {
    failures_.erase(it);
    return 0;
  }
  if (static_cast<int>(it->second.size()) < limit_) return 0;
  return it->second.front() + window_ms_ - now_ms;
}

bool LoginLimiter::RecordFailure(const std::string& address, std::int64_t now_ms) {
  auto it = failures_.find(address);
  if (it == failures_.end()) {
    if (failures_.size() >= max_addresses_) {
      // Forget the address whose last failure is oldest.
      auto oldest = failures_.begin();
      for (auto i = failures_.begin(); i != failures_.end(); ++i) {
        if (i->second.empty() || (!oldest->second.empty() && i->second.back() < oldest->second.back())) {
          oldest = i;
        }
      }
      failures_.erase(oldest);
    }
    it = failures_.emplace(address, std::deque<std::int64_t>{}).first;
  }
  Expire(it->second, now_ms);
  it->second.push_back(now_ms);
  return static_cast<int>(it->second.size()) == limit_;
}

}  // namespace vg
