#include "vitalgate/app/http_auth.h"

#include <gtest/gtest.h>

namespace vg {
namespace {

TEST(HttpAuthTest, HashesAndVerifiesWithYescryptAndBcrypt) {
  for (const char* scheme : {"yescrypt", "bcrypt"}) {
    auto hash = HashPassword("correct horse", scheme);
    ASSERT_TRUE(hash.ok()) << hash.status().message();
    EXPECT_EQ(hash->rfind(std::string(scheme) == "yescrypt" ? "$y$" : "$2b$", 0), 0u) << *hash;
    EXPECT_TRUE(VerifyPassword("correct horse", *hash)) << scheme;
    EXPECT_FALSE(VerifyPassword("correct horse ", *hash)) << scheme;
    EXPECT_FALSE(VerifyPassword("", *hash)) << scheme;
    // A fresh salt every time.
    EXPECT_NE(*HashPassword("correct horse", scheme), *hash);
  }
  EXPECT_FALSE(HashPassword("x", "md5").ok());
  EXPECT_FALSE(VerifyPassword("x", "$1$abc$def"));  // schemes other than yescrypt/bcrypt are refused
  EXPECT_FALSE(VerifyPassword("x", "plain"));
}

TEST(HttpAuthTest, UsersFileLinesAreCheckedWithTheirNumbers) {
  const std::string y = *HashPassword("pw", "yescrypt");
  auto ok = ParseUsersFile("# users\n\nnurse.kim:" + y + "\r\nadmin@ward7:" + y + "\n", "users");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].name, "admin@ward7");
  EXPECT_EQ((*ok)[0].hash, y);

  auto message = [](const std::string& text) { return ParseUsersFile(text, "users").status().message(); };
  EXPECT_EQ(message("nocolon\n"), "users:1: expected name:hash (as `vitalgate passwd` writes it)");
  EXPECT_EQ(message("\nbad name:" + y), "users:2: user name must be 1-64 of [A-Za-z0-9._@-]");
  EXPECT_EQ(message("a:$1$md5$hash"), "users:1: user \"a\": expected a yescrypt ($y$) or bcrypt ($2b$) hash");
  EXPECT_EQ(message("a:" + y + "\na:" + y), "users:2: user \"a\" again");
}

TEST(HttpAuthTest, WithUserReplacesOrAppendsOneLine) {
  EXPECT_EQ(WithUser("", {"a", "$y$1"}), "a:$y$1\n");
  EXPECT_EQ(WithUser("# c\na:$y$1\nab:$y$2\n", {"a", "$y$9"}), "# c\na:$y$9\nab:$y$2\n");
  EXPECT_EQ(WithUser("ab:$y$2", {"a", "$y$9"}), "ab:$y$2\na:$y$9\n");
}

TEST(HttpAuthTest, ParsesBasicCredentialsStrictly) {
  auto c = ParseBasicAuthorization("Basic bnVyc2U6czNjcjN0OndpdGg6Y29sb25z");  // nurse:s3cr3t:with:colons
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "nurse");
  EXPECT_EQ(c->second, "s3cr3t:with:colons");
  EXPECT_TRUE(ParseBasicAuthorization("basic YTpi"));  // a:b; the scheme is case-insensitive
  EXPECT_FALSE(ParseBasicAuthorization("Bearer YTpi"));
  EXPECT_FALSE(ParseBasicAuthorization("Basic YTpi="));   // bad length
  EXPECT_FALSE(ParseBasicAuthorization("Basic Y*pi"));    // not base64
  EXPECT_FALSE(ParseBasicAuthorization("Basic YWI="));    // "ab": no colon
  EXPECT_FALSE(ParseBasicAuthorization("Basic YQ==YWI6")); // data after padding
  EXPECT_FALSE(ParseBasicAuthorization("Basic "));
}

TEST(HttpAuthTest, FiveFailuresAMinuteLockAnAddressOut) {
  LoginLimiter limiter(5, 60'000);
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(limiter.RecordFailure("192.0.2.7", 1000 + i));
    EXPECT_EQ(limiter.RetryAfterMs("192.0.2.7", 1000 + i), 0);
  }
  EXPECT_TRUE(limiter.RecordFailure("192.0.2.7", 2000));
  EXPECT_EQ(limiter.RetryAfterMs("192.0.2.7", 2000), 59'000);  // until the first failure is a minute old
  EXPECT_EQ(limiter.RetryAfterMs("192.0.2.8", 2000), 0);       // other addresses are not affected
  EXPECT_EQ(limiter.RetryAfterMs("192.0.2.7", 61'000), 0);
  // Failures spread wider than the window never lock.
  LoginLimiter spread(5, 60'000);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(spread.RecordFailure("a", i * 15'000));
}

TEST(HttpAuthTest, LimiterForgetsTheStalestAddressWhenFull) {
  LoginLimiter limiter(2, 60'000, 2);
  limiter.RecordFailure("old", 0);
  limiter.RecordFailure("old", 1);  // locked
  limiter.RecordFailure("new", 10);
  EXPECT_GT(limiter.RetryAfterMs("old", 20), 0);
  limiter.RecordFailure("third", 30);  // forgets "old"
  EXPECT_EQ(limiter.RetryAfterMs("old", 40), 0);
}

}  // namespace
}  // namespace vg
