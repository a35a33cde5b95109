// Config validation: every error names the file and the key path; defaults are filled in.
#include "vitalgate/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "vitalgate/app/loader.h"

namespace vg {
namespace {

using nlohmann::json;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/vg_config_test";
    ::mkdir(dir_.c_str(), 0700);
    // Relative names in a config resolve against the canonical directory of the file.
    if (char* real = ::realpath(dir_.c_str(), nullptr)) {
      dir_ = real;
      std::free(real);
    }
    Write("ca.crt", "x", 0644);
    Write("client.crt", "x", 0644);
    Write("client.key", "x", 0600);
  }

  void Write(const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }

  json Valid() const {
    return json::parse(R"({
      "gateway": {"id": "ward7-gw1"},
      "storage": {"path": "buffer.db"},
      "mqtt": {"host": "broker.example",
               "tls": {"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client.key"}},
      "patients": [{"id": "p-001"}],
      "devices": [{"id": "sim-1", "patient": "p-001",
                   "transport": {"type": "simulator", "scenario": "stable"}}]
    })");
  }

  Result<LoadedConfig> Load(const json& j) { return LoadText(j.dump()); }
  Result<LoadedConfig> LoadText(const std::string& text) {
    Write("vitalgate.json", text, 0644);
    patients_ = std::make_unique<PatientDirectory>();
    // These tests are about the config file; the certificate contents are checked elsewhere.
    return LoadEverything(dir_ + "/vitalgate.json", *patients_,
                          LoadOptions{/*check_files=*/true, /*check_tls_contents=*/false});
  }
  std::string Error(const json& j) {
    auto r = Load(j);
    return r.ok() ? "(valid)" : r.status().message();
  }

  std::string dir_;
  std::unique_ptr<PatientDirectory> patients_;
};

TEST_F(ConfigTest, ValidConfigFillsDefaults) {
  auto r = Load(Valid());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const config::Config& c = r->config;
  EXPECT_EQ(c.mqtt.port, 8883);
  EXPECT_EQ(c.mqtt.client_id, "ward7-gw1");
  EXPECT_EQ(c.mqtt.topic_prefix, "vitalgate/v1");
  EXPECT_EQ(c.mqtt.format, "json");
  EXPECT_EQ(c.mqtt.tls->min_version, "1.2");
  EXPECT_EQ(c.mqtt.tls->ca_file, dir_ + "/ca.crt");  // relative to the config file
  EXPECT_EQ(c.storage.path, dir_ + "/buffer.db");
  EXPECT_EQ(c.storage.max_bytes, 536870912u);
  EXPECT_EQ(c.storage.synchronous, "full");
  EXPECT_EQ(c.http.listen, "127.0.0.1:9102");
  EXPECT_EQ(r->effective["devices"][0]["codec"]["type"], "jsonl");
  EXPECT_EQ(r->effective["devices"][0]["transport"]["interval_ms"], 1000);
  EXPECT_EQ(r->effective["rules"]["thresholds"]["spo2"]["delay_s"], 15);
  EXPECT_EQ(r->devices.size(), 1u);
}

TEST_F(ConfigTest, UnknownKeysAreErrorsWithTheirPath) {
  json j = Valid();
  j["mqtt"]["tls"]["ca_fle"] = "ca.crt";
  EXPECT_NE(Error(j).find("mqtt.tls.ca_fle: unknown key"), std::string::npos) << Error(j);
  j = Valid();
  j["devices"][0]["transport"]["scenaro"] = "stable";
  EXPECT_NE(Error(j).find("devices[0].transport.scenaro: unknown key"), std::string::npos);
  j = Valid();
  j["gatway"] = json::object();
  EXPECT_NE(Error(j).find("gatway: unknown key"), std::string::npos);
  j = Valid();
  j["rules"] = {{"thresholds", {{"spo2", {{"delay", 3}}}}}};
  EXPECT_NE(Error(j).find("rules.thresholds.spo2.delay: unknown key"), std::string::npos)
      << Error(j);
}

TEST_F(ConfigTest, WrongTypesAreErrorsWithTheirPath) {
  json j = Valid();
  j["mqtt"]["port"] = "8883";
  EXPECT_NE(Error(j).find("mqtt.port: expected an integer, got a string"), std::string::npos);
  j = Valid();
  j["patients"][0]["news2_scale"] = 3;
  EXPECT_NE(Error(j).find("patients[0].news2_scale: 3 is out of range"), std::string::npos);
  j = Valid();
  j["devices"] = json::object();
  EXPECT_NE(Error(j).find("devices: expected an array"), std::string::npos);
  j = Valid();
  j["patients"][0]["rules"] = {{"thresholds", {{"spo2", {{"low", {{{"limit", "88"}, {"priority", "high"}}}}}}}}};
  EXPECT_NE(Error(j).find("patients[0].rules.thresholds.spo2.low[0].limit: expected a number"),
            std::string::npos)
      << Error(j);
}

TEST_F(ConfigTest, MissingFilesAreNamed) {
  json j = Valid();
  j["mqtt"]["tls"]["ca_file"] = "nope.crt";
  const std::string e = Error(j);
  EXPECT_NE(e.find("mqtt.tls.ca_file: " + dir_ + "/nope.crt"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;
}

TEST_F(ConfigTest, WorldReadableKeyIsRefused) {
  Write("client.key", "x", 0644);
  const std::string e = Error(Valid());
  EXPECT_NE(e.find("mqtt.tls.key_file"), std::string::npos) << e;
  EXPECT_NE(e.find("accessible by group or others (mode 0644)"), std::string::npos) << e;
}

TEST_F(ConfigTest, PlainTcpOnlyToLoopback) {
  json j = Valid();
  j["mqtt"].erase("tls");
  EXPECT_NE(Error(j).find("mqtt.tls: required for host \"broker.example\""), std::string::npos);
  for (const char* host : {"127.0.0.1", "localhost", "::1", "127.0.0.53"}) {
    j["mqtt"]["host"] = host;
    EXPECT_EQ(Error(j), "(valid)") << host;
  }
  j["mqtt"]["host"] = "128.0.0.1";
  EXPECT_NE(Error(j), "(valid)");
  j["mqtt"]["host"] = "localhost";
  auto r = Load(j);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->config.mqtt.port, 1883);
}

TEST_F(ConfigTest, ReferencesAndIdsAreChecked) {
  json j = Valid();
  j["devices"][0]["patient"] = "p-999";
  EXPECT_NE(Error(j).find("devices[0].patient: \"p-999\" is not in patients[]"), std::string::npos);
  j = Valid();
  j["patients"].push_back({{"id", "p-001"}});
  EXPECT_NE(Error(j).find("patients[1].id: duplicate patient id"), std::string::npos);
  j = Valid();
  j["gateway"]["id"] = "ward/7";
  EXPECT_NE(Error(j).find("gateway.id: \"ward/7\" is not a valid id"), std::string::npos);
  j = Valid();
  j["devices"][0]["transport"]["type"] = "carrier-pigeon";
  EXPECT_NE(Error(j).find("devices[0].transport.type: unknown transport \"carrier-pigeon\""),
            std::string::npos);
  j = Valid();
  j["devices"][0]["codec"] = "morse";
  EXPECT_NE(Error(j).find("devices[0].codec.type: unknown codec \"morse\""), std::string::npos);
  j = Valid();
  j["devices"][0]["transport"] = {{"type", "exec"}, {"command", {"/nonexistent/bridge"}}};
  EXPECT_NE(Error(j).find("devices[0].transport.command[0]: \"/nonexistent/bridge\" not found"),
            std::string::npos)
      << Error(j);
}

TEST_F(ConfigTest, JsonSyntaxErrorsGiveLineColumnAndOffset) {
  auto r = LoadText("{\n  \"gateway\": {\"id\": \"gw\"},\n  \"mqtt\": {\"host\": \"localhost\",}\n}");
  ASSERT_FALSE(r.ok());
  const std::string& e = r.status().message();
  EXPECT_NE(e.find("vitalgate.json"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("byte offset"), std::string::npos) << e;
  EXPECT_EQ(r.status().ExitCode(), 2);
}

TEST_F(ConfigTest, DuplicateKeysAreRejected) {
  auto r = LoadText(R"({"gateway": {"id": "a", "id": "b"}, "mqtt": {"host": "localhost"}})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("duplicate key \"id\""), std::string::npos);
}

TEST_F(ConfigTest, PatientRulesOverrideByMergePatch) {
  json j = Valid();
  j["patients"][0]["rules"] = {
      {"thresholds", {{"spo2", {{"low", {{{"limit", 88}, {"priority", "high"}}}}}}}},
      {"news2", {{"enabled", false}}}};
  j["patients"].push_back({{"id", "p-002"}, {"news2_scale", 2}});
  auto r = Load(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const PatientRules& p1 = r->rules->For(*patients_->Find("p-001"));
  const PatientRules& p2 = r->rules->For(*patients_->Find("p-002"));
  const auto spo2 = static_cast<std::size_t>(Metric::kSpo2);
  ASSERT_EQ(p1.thresholds[spo2].low.size(), 1u);
  EXPECT_EQ(p1.thresholds[spo2].low[0].limit, 88);
  EXPECT_EQ(p1.thresholds[spo2].delay_ms, 15000);  // inherited
  EXPECT_FALSE(p1.news2.enabled);
  EXPECT_EQ(p2.thresholds[spo2].low.size(), 2u);  // defaults
  EXPECT_TRUE(p2.news2.enabled);
  EXPECT_EQ(p2.news2_scale, 2);
}

TEST_F(ConfigTest, NullSwitchesARuleOff) {
  json j = Valid();
  j["rules"] = {{"thresholds", {{"heart_rate", nullptr}}}, {"trends", {{"spo2_falling", nullptr}}}};
  auto r = Load(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const PatientRules& d = r->rules->defaults();
  EXPECT_FALSE(d.thresholds[static_cast<std::size_t>(Metric::kHeartRate)].enabled);
  for (const TrendRule& t : d.trends) EXPECT_NE(t.name, "spo2_falling");
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST_F(ConfigTest, HttpListenMustBeAnAddressAndPort) {
  nlohmann::json j = Valid();
  for (const char* bad : {"localhost:9102", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"}) {
    j["http"] = {{"listen", bad}};
    EXPECT_NE(Error(j).find("http.listen"), std::string::npos) << bad;
  }
  for (const char* good : {"127.0.0.1:9102", "[::1]:9102", ""}) {
    j["http"] = {{"listen", good}};
    EXPECT_EQ(Error(j), "(valid)") << good;
  }
  // Beyond loopback only with HTTPS and authentication.
  j["http"] = {{"listen", "0.0.0.0:80"}};
  EXPECT_NE(Error(j).find("is beyond loopback: set http.tls"), std::string::npos) << Error(j);
}

}  // namespace
}  // namespace vg
