#include "vitalgate/app/daemon.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>

#include "vitalgate/app/device_input.h"
#include "vitalgate/app/http_server.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/engine/runner.h"
#include "vitalgate/forward/envelope.h"
#include "vitalgate/forward/forwarder.h"
#include "vitalgate/store/writer.h"

namespace vg {
namespace {

constexpr std::size_t kIngressCapacity = 1 << 16;
constexpr std::size_t kReadingsOutCapacity = 1 << 16;
constexpr std::size_t kAlertsOutCapacity = 1 << 12;
constexpr std::size_t kAckCapacity = 1 << 10;

std::string RandomInstanceTag() {
  unsigned char bytes[4] = {};
  std::ifstream("/dev/urandom", std::ios::binary).read(reinterpret_cast<char*>(bytes), sizeof bytes);
  char out[9];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return out;
}

Result<std::string> ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open");
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// Seals every payload in the AES-256-GCM envelope (mqtt.payload_encryption).
class EnvelopeSealer final : public PayloadSealer {
 public:
  explicit EnvelopeSealer(PayloadKey key) : key_(std::move(key)) {}
  Result<std::string> Seal(std::string_view topic, std::string_view payload) override {
    return SealEnvelope(key_, topic, payload);
  }

 private:
  PayloadKey key_;
};

class Pipeline {
 public:
  Pipeline(LoadedConfig loaded, std::string config_path, PatientDirectory& patients)
      : loaded_(std::move(loaded)),
        config_path_(std::move(config_path)),
        patients_(patients),
        stats_(loaded_.devices.size()),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        watchdog_(io_) {}

  int Run() {
    const config::Config& cfg = loaded_.config;
    // Everything this process creates (outbox, WAL) is private to its user.
    ::umask(077);

    StoreOptions so{cfg.storage.path, cfg.storage.max_bytes, cfg.storage.synchronous == "full", ""};
    OpenReport report;
    std::unique_ptr<OutboxStore> store;
    std::uint32_t generation = 1;
    std::string instance;
    auto opened = OutboxStore::Open(so, &report);
    if (opened.ok()) {
      store = std::move(*opened);
      generation = store->generation();
      instance = store->instance();
      if (!report.moved_aside.empty()) {
        spdlog::error("storage: damaged outbox moved aside to {} ({}); started a fresh one",
                      report.moved_aside, report.damage);
      }
      spdlog::info("storage: {} open, {} readings and {} alerts waiting for delivery",
                   store->path(), store->reading_rows(), store->alert_rows());
    } else {
      // No outbox (read-only or failing disk): keep monitoring. Alerts and readings are
      // forwarded from memory and the outbox is retried; a technical alarm says so. Ids get a
      // fresh random instance, so they cannot collide with any outbox's.
      store_error_ = opened.status().message();
      spdlog::critical("storage: {}; running without durable storage", store_error_);
      instance = RandomInstanceTag();
    }
    ids_ = std::make_unique<IdFormat>(instance);

    for (const DeviceSetup& d : loaded_.devices) {
      device_ids_.push_back(d.config.id);
      stats_.devices[device_ids_.size() - 1]->id = d.config.id;
      stats_.devices[device_ids_.size() - 1]->transport = std::string(d.transport->name);
    }
    std::vector<EngineDevice> engine_devices;
    for (const DeviceSetup& d : loaded_.devices) {
      EngineDevice ed;
      ed.id = d.config.id;
      ed.patient = d.patient;
      if (d.config.no_data_s) ed.no_data_ms = static_cast<std::int64_t>(*d.config.no_data_s * 1000);
      if (d.config.disconnect_alarm_s) {
        ed.disconnect_alarm_ms = static_cast<std::int64_t>(*d.config.disconnect_alarm_s * 1000);
      }
      engine_devices.push_back(std::move(ed));
    }
    engine_ = std::make_unique<Engine>(loaded_.rules, std::move(engine_devices), generation,
                                       clock_.MonotonicNs());

    EngineRings rings;
    rings.inputs.push_back(&io_ring_);
    rings.acks = &ack_ring_;
    rings.readings_out = &readings_out_;
    rings.alerts_out = &alerts_out_;
    rings.wake_engine = &wake_engine_;
    rings.wake_store = &wake_store_;
    runner_ = std::make_unique<EngineRunner>(*engine_, clock_, rings, stats_);

    std::optional<PayloadKey> payload_key;
    if (cfg.mqtt.payload_encryption) {
      auto key = LoadPayloadKey(cfg.mqtt.payload_encryption->key_file,
                                cfg.mqtt.payload_encryption->key_id);
      if (!key.ok()) {
        spdlog::critical("mqtt.payload_encryption.key_file: {}", key.status().message());
        return 2;
      }
      payload_key = *key;
      sealer_ = std::make_unique<EnvelopeSealer>(*key);
    }

    PayloadContext payload{&patients_, device_ids_, ids_.get()};
    OutboxWriterOptions wo;
    if (payload_key) wo.at_rest_key = payload_key->key;
    wo.batch_max_rows = static_cast<std::size_t>(cfg.storage.batch_max_rows);
    wo.reopen = so;
    OutboxWriterEvents events;
    events.on_health = [this](bool healthy, const std::string& why) {
      runner_->PostGatewayCondition(DeviceCondition::kStorage, !healthy,
                                    "local storage failing, readings are not stored: " + why);
    };
    events.on_dropped = [this](std::uint64_t n, const std::vector<std::string>&) {
      runner_->PostGatewayCondition(DeviceCondition::kReadingsDropped, true,
                                    std::to_string(n) + " undelivered readings dropped (storage full)");
    };
    const std::string store_path = store ? store->path() : "";
    writer_ = std::make_unique<OutboxWriter>(std::move(store), readings_out_, alerts_out_, delivered_,
                                             volatile_, payload, wake_store_, wake_forwarder_,
                                             stats_, wo, events);

    auto client_options = MakeClientOptions();
    if (!client_options.ok()) {
      spdlog::critical("{}", client_options.status().message());
      return 2;
    }
    ForwarderOptions fo;
    fo.gateway_id = cfg.gateway_id;
    fo.broker = cfg.mqtt.host + ":" + std::to_string(cfg.mqtt.port);
    fo.topic_prefix = cfg.mqtt.topic_prefix;
    fo.format = cfg.mqtt.format;
    fo.version = VITALGATE_VERSION;
    fo.max_inflight = cfg.mqtt.max_inflight;
    fo.max_readings_per_message = cfg.mqtt.max_readings_per_message;
    fo.reconnect_min_ms = cfg.mqtt.reconnect_min_ms;
    fo.reconnect_max_ms = cfg.mqtt.reconnect_max_ms;
    fo.store_path = cfg.storage.path;
    if (cfg.mqtt.tls && cfg.mqtt.tls->cert_file.empty()) {
      fo.tls_failure_hint =
          "no client certificate is configured (mqtt.tls.cert_file): a broker that requires "
          "mutual TLS refuses the connection";
    }
    if (payload_key) fo.at_rest_key = payload_key->key;
    MqttClientOptions mo = *client_options;
    forwarder_ = std::make_unique<Forwarder>(
        fo, [mo](MqttCallbacks cb) { return MakeMosquittoClient(mo, std::move(cb)); }, delivered_,
        volatile_, ack_ring_, wake_engine_, wake_forwarder_, clock_, *ids_, stats_, sealer_.get());

    runner_->Start();
    writer_->Start();
    forwarder_->Start();
    if (!report.moved_aside.empty()) {
      runner_->PostGatewayCondition(DeviceCondition::kStorage, true,
                                    "damaged outbox moved aside to " + report.moved_aside);
    }
    if (!store_error_.empty()) {
      runner_->PostGatewayCondition(DeviceCondition::kStorage, true,
                                    "no durable storage, readings are not stored: " + store_error_);
    }

    if (!StartDevices()) {
      Shutdown();
      return 1;
    }
    if (!cfg.http.listen.empty()) {
      http_ = std::make_unique<HttpServer>(
          io_, stats_, clock_, HealthInfo{cfg.gateway_id, cfg.site, VITALGATE_VERSION});
      const Status s = http_->Listen(cfg.http.listen);
      if (!s.ok()) {
        spdlog::critical("{}", s.message());
        Shutdown();
        return 1;
      }
    }
    tls_fingerprint_ = TlsFingerprint();
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) { OnSignal(ec, sig); });
    ArmWatchdog();
    sd_notify(0, "READY=1\nSTATUS=running");
    spdlog::info("vitalgate {} running: gateway {}, {} devices, {} patients", VITALGATE_VERSION,
                 cfg.gateway_id, loaded_.devices.size(), cfg.patients.size());
    io_.run();
    Shutdown();
    return 0;
  }

 private:
  Result<MqttClientOptions> MakeClientOptions() {
    const config::MqttConfig& m = loaded_.config.mqtt;
    MqttClientOptions o;
    o.host = m.host;
    o.port = m.port;
    o.client_id = m.client_id;
    o.keepalive_s = m.keepalive_s;
    if (m.tls) {
      o.tls = true;
      o.ca_file = m.tls->ca_file;
      o.cert_file = m.tls->cert_file;
      o.key_file = m.tls->key_file;
      o.tls_min_version = m.tls->min_version;
    }
    o.username = m.username;
    if (!m.password_file.empty()) {
      auto pw = ReadFirstLine(m.password_file);
      if (!pw.ok()) return pw.status().WithContext("mqtt.password_file");
      o.password = *pw;
    }
    o.will_topic = m.topic_prefix + "/" + loaded_.config.gateway_id + "/status";
    // The broker sends the will when the connection dies; its time stamp is that of the
    // connection, the last moment the gateway was known to be alive.
    o.will_payload = [this, topic = o.will_topic] {
      std::string s = "{\"state\":\"offline\",\"version\":\"" VITALGATE_VERSION "\",\"ts\":\"";
      AppendRfc3339(s, SystemClock::Instance().WallMs());
      s += "\"}";
      if (sealer_) {
        auto sealed = sealer_->Seal(topic, s);
        if (sealed.ok()) return std::move(*sealed);
      }
      return s;
    };
    return o;
  }

  bool StartDevices() {
    IngressPort port{&io_ring_, &wake_engine_};
    // Transport state (e.g. BLE glucose record numbers) lives next to the outbox: the same
    // private, persistent directory.
    std::string state_dir =
        std::filesystem::path(loaded_.config.storage.path).parent_path().string();
    if (state_dir.empty()) state_dir = ".";
    for (std::size_t i = 0; i < loaded_.devices.size(); ++i) {
      const DeviceSetup& d = loaded_.devices[i];
      auto codec = MakeCodec(d.codec_options);
      if (!codec.ok()) {
        spdlog::critical("device {}: codec: {}", d.config.id, codec.status().message());
        return false;
      }
      inputs_.push_back(std::make_unique<DeviceInput>(
          static_cast<DeviceIndex>(i), d.config.id, d.patient, std::move(*codec), port, patients_,
          *stats_.devices[i], clock_));
      TransportContext ctx{&io_, &clock_, d.config.id, inputs_.back().get(), state_dir, {}};
      ctx.characteristics.assign(d.codec->characteristics.begin(), d.codec->characteristics.end());
      auto transport = d.transport->make(ctx, d.transport_options);
      if (!transport.ok()) {
        spdlog::critical("device {}: transport: {}", d.config.id, transport.status().message());
        return false;
      }
      transports_.push_back(std::move(*transport));
    }
    for (auto& t : transports_) t->Start();
    return true;
  }

  void OnSignal(const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      Reload();
      signals_.async_wait([this](const boost::system::error_code& e, int s) { OnSignal(e, s); });
      return;
    }
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    io_.stop();
  }

  void Reload() {
    sd_notify(0, "RELOADING=1");
    auto reloaded = LoadEverything(config_path_, patients_);
    if (!reloaded.ok()) {
      spdlog::error("reload: keeping the running configuration: {}", reloaded.status().message());
    } else {
      if (reloaded->effective["devices"] != loaded_.effective["devices"]) {
        spdlog::warn("reload: device changes take effect at the next restart");
      }
      runner_->PostRules(reloaded->rules);
      spdlog::info("reload: rules and patients reloaded ({} patients)",
                   reloaded->config.patients.size());
      for (const std::string& w : reloaded->warnings) spdlog::warn("reload: {}", w);
      // Certificates and keys are re-read when their files changed (rotation without restart);
      // LoadEverything has checked them, so a broken rotation never replaces a working link.
      const std::string fingerprint = TlsFingerprint();
      if (fingerprint != tls_fingerprint_) {
        tls_fingerprint_ = fingerprint;
        forwarder_->RequestReconnect();
      }
      if (reloaded->effective["mqtt"] != loaded_.effective["mqtt"]) {
        spdlog::warn("reload: other mqtt changes take effect at the next restart");
      }
    }
    sd_notify(0, "READY=1");
  }

  // The contents of the TLS files, to notice a rotation.
  std::string TlsFingerprint() const {
    if (!loaded_.config.mqtt.tls) return "";
    std::string all;
    for (const std::string& f : {loaded_.config.mqtt.tls->ca_file, loaded_.config.mqtt.tls->cert_file,
                                 loaded_.config.mqtt.tls->key_file}) {
      std::ifstream in(f, std::ios::binary);
      all += std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      all += '\0';
    }
    return std::to_string(std::hash<std::string>{}(all)) + ":" + std::to_string(all.size());
  }

  void ArmWatchdog() {
    watchdog_.expires_after(std::chrono::seconds(1));
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      // WATCHDOG=1 only while every loop is moving: each pipeline thread counts its iterations
      // and sleeps at most a second between them.
      const std::uint64_t e = stats_.engine_loops.load(), s = stats_.store_loops.load(),
                          f = stats_.forwarder_loops.load();
      const bool moving = e != last_engine_ && s != last_store_ && f != last_forwarder_;
      last_engine_ = e;
      last_store_ = s;
      last_forwarder_ = f;
      if (moving) sd_notify(0, "WATCHDOG=1");
      const std::string status =
          "STATUS=broker " + std::string(stats_.broker_connected ? "connected" : "disconnected") +
          ", backlog " + std::to_string(stats_.backlog_readings.load()) + " readings";
      sd_notify(0, status.c_str());
      ArmWatchdog();
    });
  }

  void Shutdown() {
    if (http_) http_->Stop();
    for (auto& t : transports_) t->Stop();
    if (runner_) {
      runner_->RequestStop();
      runner_->Join();
    }
    if (writer_) {
      writer_->RequestStop();
      writer_->Join();
    }
    if (forwarder_) {
      forwarder_->RequestStop();
      forwarder_->Join();
    }
    spdlog::info("stopped: {} readings committed, {} waiting for delivery",
                 stats_.readings_committed.load(), stats_.backlog_readings.load());
  }

  LoadedConfig loaded_;
  std::string config_path_;
  PatientDirectory& patients_;
  SystemClock clock_;
  GatewayStats stats_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer watchdog_;
  std::vector<std::string> device_ids_;
  std::string store_error_;
  std::unique_ptr<IdFormat> ids_;
  VolatileQueue volatile_;
  std::unique_ptr<Engine> engine_;
  SpscRing<IngressItem> io_ring_{kIngressCapacity};
  SpscRing<AckRequest> ack_ring_{kAckCapacity};
  SpscRing<Reading> readings_out_{kReadingsOutCapacity};
  SpscRing<AlertEvent> alerts_out_{kAlertsOutCapacity};
  Doorbell wake_engine_, wake_store_, wake_forwarder_;
  DeliveryQueue delivered_;
  std::unique_ptr<EngineRunner> runner_;
  std::unique_ptr<OutboxWriter> writer_;
  std::unique_ptr<Forwarder> forwarder_;
  std::vector<std::unique_ptr<DeviceInput>> inputs_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<PayloadSealer> sealer_;
  std::string tls_fingerprint_;
  std::uint64_t last_engine_ = 0, last_store_ = 0, last_forwarder_ = 0;
};

}  // namespace

int RunDaemon(const std::string& config_path) {
  PatientDirectory patients;
  auto loaded = LoadEverything(config_path, patients);
  if (!loaded.ok()) {
    spdlog::critical("{}", loaded.status().message());
    return loaded.status().ExitCode();
  }
  SetLogLevel(loaded->config.log_level);
  for (const std::string& w : loaded->warnings) spdlog::warn("{}", w);
  Pipeline pipeline(std::move(*loaded), config_path, patients);
  return pipeline.Run();
}

}  // namespace vg
