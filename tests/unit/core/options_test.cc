#include "vitalgate/core/options.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace vg {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 2> kModes{"fast", "safe"};
constexpr OptionSpec kSpecs[] = {
    {"baud", OptionType::kInteger, "9600", "Baud rate.", false, 300, 4000000},
    {"mode", OptionType::kString, "\"safe\"", "Mode.", false, -1e300, 1e300, kModes},
    {"name", OptionType::kString, "", "Name.", true},
    {"args", OptionType::kStringArray, "[]", "Arguments."},
};

TEST(OptionSpecTest, FillsDefaultsAndKeepsValues) {
  auto r = ApplyOptionSpecs(json{{"name", "x"}, {"baud", 19200}}, kSpecs, "dev", OptionContext{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)["baud"], 19200);
  EXPECT_EQ((*r)["mode"], "safe");
  EXPECT_EQ((*r)["args"], json::array());
}

TEST(OptionSpecTest, ErrorsNameTheKeyPath) {
  auto unknown = ApplyOptionSpecs(json{{"name", "x"}, {"bud", 1}}, kSpecs, "devices[2].transport",
                                  OptionContext{});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message().rfind("devices[2].transport.bud: unknown key", 0), 0u)
      << unknown.status().message();

  auto type = ApplyOptionSpecs(json{{"name", "x"}, {"baud", "9600"}}, kSpecs, "t", OptionContext{});
  EXPECT_EQ(type.status().message(), "t.baud: expected an integer, got a string");

  auto range = ApplyOptionSpecs(json{{"name", "x"}, {"baud", 10}}, kSpecs, "t", OptionContext{});
  EXPECT_EQ(range.status().message(), "t.baud: 10 is out of range, expected 300 to 4000000");

  auto choice = ApplyOptionSpecs(json{{"name", "x"}, {"mode", "turbo"}}, kSpecs, "t", OptionContext{});
  EXPECT_EQ(choice.status().message(), "t.mode: \"turbo\" is not one of \"fast\", \"safe\"");

  auto missing = ApplyOptionSpecs(json::object(), kSpecs, "t", OptionContext{});
  EXPECT_EQ(missing.status().message(), "t.name: required key is missing");

  auto arr = ApplyOptionSpecs(json{{"name", "x"}, {"args", {"a", 1}}}, kSpecs, "t", OptionContext{});
  EXPECT_EQ(arr.status().message(), "t.args: expected an array of strings, got an array");

  auto notobj = ApplyOptionSpecs(json::array(), kSpecs, "t", OptionContext{});
  EXPECT_EQ(notobj.status().message(), "t: expected an object, got an array");
}

TEST(OptionSpecTest, SecretFilesMustBePrivate) {
  const std::string path = ::testing::TempDir() + "/vg_secret_test.key";
  std::ofstream(path) << "secret\n";
  ::chmod(path.c_str(), 0644);
  Status s = CheckFile(path, FileCheck::kSecret, "mqtt.tls.key_file");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("mode 0644"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(CheckFile(path, FileCheck::kSecret, "k").ok());
  EXPECT_EQ(CheckFile(path + ".missing", FileCheck::kReadable, "k").code(), StatusCode::kNotFound);
  std::remove(path.c_str());
}

// The package's layout: root (or the service user) owns the key, the service's group reads it.
TEST(OptionSpecTest, SecretFilesMayBeReadByTheServiceGroupOnly) {
  const std::string path = ::testing::TempDir() + "/vg_secret_group_test.key";
  std::ofstream(path) << "secret\n";
  ASSERT_EQ(::chown(path.c_str(), ::geteuid(), ::getegid()), 0);

  ::chmod(path.c_str(), 0640);
  EXPECT_TRUE(CheckSecretFile(path, "mqtt.tls.key_file").ok());
  ::chmod(path.c_str(), 0440);
  EXPECT_TRUE(CheckSecretFile(path, "mqtt.tls.key_file").ok());
  ::chmod(path.c_str(), 0400);
  EXPECT_TRUE(CheckSecretFile(path, "mqtt.tls.key_file").ok());

  ::chmod(path.c_str(), 0660);
  Status writable = CheckSecretFile(path, "mqtt.password_file");
  EXPECT_EQ(writable.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(writable.message().rfind("mqtt.password_file: " + path + ": secret file is writable", 0), 0u)
      << writable.message();
  EXPECT_NE(writable.message().find("chmod 640"), std::string::npos);

  ::chmod(path.c_str(), 0604);
  Status others = CheckSecretFile(path, "k");
  EXPECT_EQ(others.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(others.message().find("mode 0604"), std::string::npos) << others.message();

  // kSecret in an option table goes through the same rule.
  ::chmod(path.c_str(), 0640);
  EXPECT_TRUE(CheckFile(path, FileCheck::kSecret, "k").ok());

  // A group that is neither this process's nor the service's: only root can set one up.
  if (::geteuid() == 0) {
    const gid_t other = 54321;  // no such group on a test machine, and surely not ours
    ASSERT_EQ(::chown(path.c_str(), 0, other), 0);
    Status foreign = CheckSecretFile(path, "mqtt.tls.key_file");
    EXPECT_EQ(foreign.code(), StatusCode::kPermissionDenied);
    EXPECT_NE(foreign.message().find("readable by group 54321"), std::string::npos)
        << foreign.message();
    EXPECT_NE(foreign.message().find("not the service's group (vitalgate)"), std::string::npos);
    // Group-readable, our group, but owned by another user: refused too.
    ASSERT_EQ(::chown(path.c_str(), 54321, ::getegid()), 0);
    Status owner = CheckSecretFile(path, "mqtt.tls.key_file");
    EXPECT_EQ(owner.code(), StatusCode::kPermissionDenied);
    EXPECT_NE(owner.message().find("owned by 54321"), std::string::npos) << owner.message();
    // Owner only: accepted whoever owns it, as long as this process can read it.
    ::chmod(path.c_str(), 0600);
    EXPECT_TRUE(CheckSecretFile(path, "k").ok());
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vg
