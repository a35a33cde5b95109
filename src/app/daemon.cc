#include "vitalgate/app/daemon.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <spdlog/spdlog.h>

#include "vitalgate/app/device_input.h"
#include "vitalgate/app/http_server.h"
#include "vitalgate/app/status.h"
#include "vitalgate/core/aead.h"
#include "vitalgate/core/json_text.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/engine/runner.h"
#include "vitalgate/forward/downlink.h"
#include "vitalgate/forward/envelope.h"
#include "vitalgate/forward/forwarder.h"
#include "vitalgate/forward/request_destination.h"
#include "vitalgate/store/writer.h"

namespace vg {
namespace {

// 16,384 readings are 50 ms at 300,000 readings/s, more than a thread's scheduling hiccup;
// larger rings cost resident memory (every slot is touched once the ring has wrapped) and buy
// no throughput: when a ring is full, stream transports pause and the kernel's socket buffer
// holds the bytes.
constexpr std::size_t kIngressCapacity = 1 << 14;
constexpr std::size_t kReadingsOutCapacity = 1 << 14;
constexpr std::size_t kAlertsOutCapacity = 1 << 12;
constexpr std::size_t kAckCapacity = 1 << 10;
constexpr auto kEngineAnswer = std::chrono::seconds(5);

std::uint64_t RandomU64() {
  std::uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
      // No entropy source: ids would be guessable. The process cannot run safely without one.
      spdlog::critical("getrandom failed; cannot make unguessable alarm ids");
      std::abort();
    }
  }
  return v;
}

std::string RandomInstanceTag() {
  const std::uint64_t v = RandomU64();
  char out[9];
  std::snprintf(out, sizeof out, "%08x", static_cast<unsigned>(v & 0xFFFFFFFFu));
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

// Collects events raised before the pipeline runs (restored alarms that ended, devices without
// a patient), handed to the store once it does.
class CollectingSink final : public AlertSink {
 public:
  void OnAlert(AlertEvent&& e) override { events.push_back(std::move(e)); }
  std::vector<AlertEvent> events;
};

// The configuration a running device depends on, beyond its patient: a change restarts it.
nlohmann::json DeviceIdentity(const nlohmann::json& effective) {
  nlohmann::json j = effective;
  j.erase("patient");
  return j;
}

class Pipeline final : public DownlinkSink, public StatusSource {
 public:
  Pipeline(LoadedConfig loaded, std::string config_path, PatientDirectory& patients)
      : loaded_(std::move(loaded)),
        config_path_(std::move(config_path)),
        patients_(patients),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        watchdog_(io_) {}

  int Run() {
    const config::Config& cfg = loaded_.config;
    // Everything this process creates (outbox, WAL) is private to its user.
    ::umask(077);
    started_ms_ = clock_.WallMs();

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

    StoreOptions so{cfg.storage.path, cfg.storage.max_bytes, cfg.storage.synchronous == "full", "",
                    {"mqtt"}};
    for (const DestinationSetup& d : loaded_.destinations) so.destinations.push_back(d.config.name);
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
      if (report.migrated_from != 0) {
        spdlog::info("storage: {} migrated from schema {} to {}", store->path(),
                     report.migrated_from, kOutboxSchemaVersion);
      }
      spdlog::info("storage: {} open (synchronous={}), {} readings and {} alerts waiting for delivery",
                   store->path(), store->SynchronousMode(), store->reading_rows(), store->alert_rows());
    } else if (opened.status().code() == StatusCode::kFailedPrecondition) {
      // A file from a newer release: refuse rather than lose its rows.
      spdlog::critical("{}", opened.status().message());
      return 1;
    } else {
      // No outbox (read-only or failing disk): keep monitoring. Alerts and readings are
      // forwarded from memory and the outbox is retried; a technical alarm says so. Ids get a
      // fresh random instance, so they cannot collide with any outbox's.
      store_error_ = opened.status().message();
      spdlog::critical("storage: {}; running without durable storage", store_error_);
      instance = RandomInstanceTag();
    }
    ids_ = std::make_unique<IdFormat>(instance);

    // Assignments made by cmd/assign win over the config file.
    if (store) {
      auto assignments = store->LoadAssignments();
      if (assignments.ok()) {
        for (Assignment& a : *assignments) overrides_[a.device] = std::move(a);
      } else {
        spdlog::error("storage: cannot read assignments: {}", assignments.status().message());
      }
    }

    // Devices: indices, statistics, routing.
    std::vector<EngineDevice> engine_devices;
    std::vector<DeviceStats*> device_stats;
    for (const DeviceSetup& d : loaded_.devices) {
      auto index = device_names_.Intern(d.config.id);
      if (!index.ok()) {
        spdlog::critical("{}", index.status().message());
        return 2;
      }
      DeviceStats& ds = StatsFor(static_cast<DeviceIndex>(*index), d);
      const DeviceRouting routing = RoutingFor(d);
      engine_devices.push_back(MakeEngineDevice(d, routing));
      device_stats.push_back(&ds);
    }
    EngineEnvironment env;
    env.patients = &patients_;
    env.random_id = RandomU64;
    env.persist_alarms = store != nullptr;
    engine_ = std::make_unique<Engine>(loaded_.rules, std::move(engine_devices), generation,
                                       clock_.MonotonicNs(), env);
    CollectingSink early;
    if (store) RestoreState(*store, payload_key, early);
    // Raises `unassigned` for devices without a patient (unless restored).
    engine_->Start(clock_.WallMs(), early);

    EngineRings rings;
    rings.inputs.push_back(&io_ring_);
    rings.acks = &ack_ring_;
    rings.readings_out = &readings_out_;
    rings.alerts_out = &alerts_out_;
    rings.wake_engine = &wake_engine_;
    rings.wake_store = &wake_store_;
    runner_ = std::make_unique<EngineRunner>(*engine_, clock_, rings, stats_, device_stats);

    // Destinations: the primary MQTT broker and the configured others.
    primary_stats_ = AddDestinationStats("mqtt", "mqtt",
                                         (cfg.mqtt.tls ? "mqtts://" : "mqtt://") + cfg.mqtt.host + ":" +
                                             std::to_string(cfg.mqtt.port));
    std::vector<Doorbell*> bells{&wake_forwarder_};
    for (std::size_t i = 0; i < loaded_.destinations.size(); ++i) {
      destination_bells_.push_back(std::make_unique<Doorbell>());
      bells.push_back(destination_bells_.back().get());
    }
    render_context_.Set(MakeRenderContext());

    PayloadContext payload{&patients_, &device_names_, ids_.get()};
    OutboxWriterOptions wo;
    if (payload_key) wo.at_rest_key = payload_key->key;
    wo.batch_max_rows = static_cast<std::size_t>(cfg.storage.batch_max_rows);
    wo.reopen = so;
    wo.clock = &clock_;
    OutboxWriterEvents events;
    events.on_health = [this](bool healthy, const std::string& why) {
      runner_->PostGatewayCondition(DeviceCondition::kStorage, !healthy,
                                    healthy ? "local storage works again"
                                            : "local storage failing, readings are not stored: " + why);
    };
    events.on_alert = [this](const AlertEvent& e) { LogAlarm(e); };
    events.on_dropped = [this](std::uint64_t n, const std::vector<std::string>&) {
      runner_->PostGatewayCondition(DeviceCondition::kReadingsDropped, true,
                                    std::to_string(n) + " undelivered readings dropped (storage full)");
    };
    const std::vector<int> bits = store ? store->destination_bits() : std::vector<int>{};
    writer_ = std::make_unique<OutboxWriter>(std::move(store), readings_out_, alerts_out_, delivered_,
                                             volatile_, payload, wake_store_, bells, stats_, wo, events);

    auto client_options = MakeClientOptions();
    if (!client_options.ok()) {
      spdlog::critical("{}", client_options.status().message());
      return 2;
    }
    DownlinkGateOptions gate;
    gate.ack_topic = cfg.mqtt.topic_prefix + "/" + cfg.gateway_id + "/cmd/ack";
    gate.assign_topic = cfg.mqtt.topic_prefix + "/" + cfg.gateway_id + "/cmd/assign";
    gate.not_before_ms = started_ms_;
    if (cfg.mqtt.payload_encryption) {
      gate.encryption = true;
      gate.window_ms =
          loaded_.effective["mqtt"]["payload_encryption"].value("downlink_window_s", 120) * 1000ll;
      const config::EncryptionConfig& enc = *cfg.mqtt.payload_encryption;
      if (!enc.downlink_key_file.empty()) {
        auto key = LoadPayloadKey(enc.downlink_key_file, enc.downlink_key_id);
        if (!key.ok()) {
          spdlog::critical("mqtt.payload_encryption.downlink_key_file: {}", key.status().message());
          return 2;
        }
        if (payload_key && key->key == payload_key->key) {
          spdlog::critical("mqtt.payload_encryption.downlink_key_file: holds the payload key; "
                           "the downlink needs a key of its own");
          return 2;
        }
        gate.downlink_key = *key;
      } else {
        spdlog::warn("mqtt.payload_encryption: no downlink_key_file; cmd/ack and cmd/assign are "
                     "refused while payloads are encrypted");
      }
    }
    gate_ = std::make_unique<DownlinkGate>(gate);
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
    fo.bit = bits.empty() ? 0 : bits[0];
    if (cfg.mqtt.tls && cfg.mqtt.tls->cert_file.empty()) {
      fo.tls_failure_hint =
          "no client certificate is configured (mqtt.tls.cert_file): a broker that requires "
          "mutual TLS refuses the connection";
    }
    if (payload_key) fo.at_rest_key = payload_key->key;
    MqttClientOptions mo = *client_options;
    forwarder_ = std::make_unique<Forwarder>(
        fo, [mo](MqttCallbacks cb) { return MakeMosquittoClient(mo, std::move(cb)); }, delivered_,
        volatile_, this, wake_forwarder_, clock_, stats_, *primary_stats_, sealer_.get());
    for (std::size_t i = 0; i < loaded_.destinations.size(); ++i) {
      if (!StartDestination(i, bits.size() > i + 1 ? bits[i + 1] : static_cast<int>(i + 1),
                            payload_key)) {
        return 2;
      }
    }

    runner_->Start();
    writer_->Start();
    forwarder_->Start();
    for (auto& d : destinations_) d->Start();
    CheckCertificates();
    for (AlertEvent& e : early.events) {
      while (!alerts_out_.TryPush(std::move(e))) {
        wake_store_.Ring();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    wake_store_.Ring();
    // Gateway conditions: say what holds now, so alarms restored from before a restart that no
    // longer hold are cleared.
    runner_->PostGatewayCondition(
        DeviceCondition::kStorage, !report.moved_aside.empty() || !store_error_.empty(),
        !store_error_.empty() ? "no durable storage, readings are not stored: " + store_error_
        : !report.moved_aside.empty() ? "damaged outbox moved aside to " + report.moved_aside
                                      : "local storage works");
    runner_->PostGatewayCondition(DeviceCondition::kDestination, false, "destinations deliver");

    if (!StartDevices()) {
      Shutdown();
      return 1;
    }
    if (!cfg.http.listen.empty()) {
      // Logins to the status page (HTTPS) are audited like every other access to alarms.
      http_ = std::make_unique<HttpServer>(
          io_, stats_, clock_, HealthInfo{cfg.gateway_id, cfg.site, VITALGATE_VERSION}, this,
          [this](std::string kind, std::string actor, std::string detail) {
            Audit(std::move(kind), std::move(actor), std::move(detail));
          });
      const Status s = http_->Listen(cfg.http);
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

  // StatusSource, on the I/O thread.
  StatusSnapshot Snapshot() const override {
    StatusSnapshot s;
    const config::Config& cfg = loaded_.config;
    s.gateway_id = cfg.gateway_id;
    s.site = cfg.site;
    s.version = VITALGATE_VERSION;
    s.now_ms = clock_.WallMs();
    s.started_ms = started_ms_;
    s.storage_healthy = stats_.store_healthy.load();
    s.storage_error = store_error_;
    s.backlog_readings = stats_.backlog_readings.load();
    s.backlog_events = stats_.backlog_alerts.load();
    s.backlog_bytes = stats_.backlog_bytes.load();
    for (std::size_t i = 0; i < stats_.destinations.size(); ++i) {
      const DestinationStats& d = *stats_.destinations[i];
      DestinationStatus ds;
      ds.name = d.name;
      ds.type = d.type;
      ds.target = d.target;
      ds.connected = d.connected.load();
      if (!ds.connected) ds.last_error = d.last_error.Get();
      ds.backlog_readings = i == 0 ? stats_.backlog_readings.load() : d.backlog_readings.load();
      ds.backlog_events = i == 0 ? stats_.backlog_alerts.load() : d.backlog_events.load();
      const std::int64_t oldest = d.oldest_unacked_rx_ms.load();
      if (oldest > 0) ds.oldest_unsent_age_s = static_cast<double>(s.now_ms - oldest) / 1000.0;
      ds.backlog_alarm_s = static_cast<double>(i == 0 ? cfg.primary_backlog_alarm_ms
                                                      : loaded_.destinations[i - 1].config.backlog_alarm_ms) /
                           1000.0;
      ds.readings_delivered = d.readings_delivered.load();
      ds.dead_letters = d.dead_letters.load();
      s.destinations.push_back(std::move(ds));
    }
    for (const LiveDevice& l : live_) {
      const DeviceStats& st = *stats_.devices[l.index];
      DeviceStatus d;
      d.id = l.setup.config.id;
      const DeviceRouting& routing = l.input->routing();
      if (!routing.unassigned) d.patient = patients_.Name(routing.patient);
      for (const config::PatientConfig& p : cfg.patients) {
        if (p.id == d.patient) d.location = p.location;
      }
      d.transport = st.transport;
      d.link_up = st.link_up.load();
      d.intermittent = l.setup.config.intermittent || l.setup.config.spot;
      const std::int64_t last = st.last_reading_ms.load();
      if (last > 0) d.last_reading_age_s = static_cast<double>(s.now_ms - last) / 1000.0;
      d.no_data_s = l.setup.config.no_data_s.value_or(
          static_cast<double>(loaded_.rules->For(routing.patient).technical.no_data_ms) / 1000.0);
      const double battery = st.battery_pct.load();
      if (battery >= 0) d.battery_pct = battery;
      d.readings = st.readings.load();
      d.decode_errors = st.decode_errors.load();
      d.invalid = st.invalid.load();
      d.clock_implausible = st.clock_implausible.load();
      const std::int64_t offset = st.clock_offset_ms.load();
      if (offset != 0) d.clock_offset_s = static_cast<double>(offset) / 1000.0;
      s.devices.push_back(std::move(d));
    }
    if (runner_) {
      for (const OpenAlarmInfo& a : *runner_->OpenAlarms()) {
        AlarmStatus as;
        as.alarm_id = ids_->Format(a.alarm_id);
        const std::string& patient = patients_.Name(a.patient);
        if (!IsPlaceholderPatient(patient)) as.patient = patient;
        if (a.device && *a.device < device_names_.size()) as.device = device_names_.Name(*a.device);
        as.kind = std::string(Name(a.kind));
        as.what = a.metric ? std::string(Info(*a.metric).name)
                           : a.condition ? std::string(Name(*a.condition)) : std::string();
        as.priority = std::string(Name(a.priority));
        as.state = std::string(Name(a.state));
        as.message = a.message;
        as.raised_ms = a.raised_ts_ms;
        as.acknowledged_by = a.acked_by;
        s.alarms.push_back(std::move(as));
      }
    }
    if (writer_) {
      for (const AuditEntry& e : writer_->RecentAudit()) {
        s.audit.push_back(AuditStatus{e.seq, e.ts_ms, e.kind, e.actor, e.detail});
      }
    }
    const std::string rejected = stats_.client_certificate_rejected.Get();
    for (const CertificateInfo& c : loaded_.certificates) {
      s.certificates.push_back(CertificateStatus{c.key, c.path, c.subject, c.not_after,
                                                 !rejected.empty() && c.key == "mqtt.tls.cert_file"});
    }
    s.last_reload_ok = last_reload_ok_;
    s.last_reload_ms = last_reload_ms_;
    s.last_reload_error = last_reload_error_;
    return s;
  }

  // DownlinkSink, on the forwarder thread.
  void OnDownlink(std::string_view topic, std::string_view payload, bool retained) override {
    DownlinkRefusal refusal = DownlinkRefusal::kInvalid;
    auto cmd = gate_->Admit(topic, payload, retained, clock_.WallMs(), &refusal);
    if (!cmd.ok()) {
      stats_.downlink_rejected.fetch_add(1, std::memory_order_relaxed);
      stats_.downlink_refused[static_cast<std::size_t>(refusal)].fetch_add(1, std::memory_order_relaxed);
      if (downlink_log_.Allow(clock_.MonotonicNs(), downlink_suppressed_)) {
        spdlog::warn("mqtt: downlink message ignored: {}", cmd.status().message());
      }
      return;
    }
    if (cmd->kind == DownlinkCommand::Kind::kAck) {
      const auto id = ids_->Parse(cmd->ack.alert_id);
      if (!id) {
        stats_.downlink_rejected.fetch_add(1, std::memory_order_relaxed);
        stats_.downlink_refused[static_cast<std::size_t>(DownlinkRefusal::kInvalid)].fetch_add(1);
        if (downlink_log_.Allow(clock_.MonotonicNs(), downlink_suppressed_)) {
          spdlog::warn("mqtt: downlink message ignored: cmd/ack: alert_id is not an id issued by this gateway");
        }
        return;
      }
      AckRequest req{*id, std::move(cmd->ack.by), clock_.WallMs()};
      if (!ack_ring_.TryPush(std::move(req))) {
        stats_.downlink_rejected.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("mqtt: downlink message ignored: cmd/ack: too many acknowledgements queued");
        return;
      }
      wake_engine_.Ring();
      return;
    }
    // Assignments change device tables: the control thread's job.
    boost::asio::post(io_, [this, assign = std::move(cmd->assign)]() mutable { OnAssign(std::move(assign)); });
  }

 private:
  DeviceStats& StatsFor(DeviceIndex index, const DeviceSetup& d) {
    while (stats_.devices.size() <= index) stats_.devices.push_back(std::make_unique<DeviceStats>());
    DeviceStats& ds = *stats_.devices[index];
    ds.id = d.config.id;
    ds.transport = std::string(d.transport->name);
    ds.removed.store(false);
    return ds;
  }

  DestinationStats* AddDestinationStats(std::string name, std::string type, std::string target) {
    auto s = std::make_unique<DestinationStats>();
    s->name = std::move(name);
    s->type = std::move(type);
    s->target = std::move(target);
    stats_.destinations.push_back(std::move(s));
    return stats_.destinations.back().get();
  }

  // The patient a device feeds now: its cmd/assign override, else the config file's.
  DeviceRouting RoutingFor(const DeviceSetup& d) {
    DeviceRouting r;
    std::optional<std::string> patient = d.config.patient;
    auto o = overrides_.find(d.config.id);
    if (o != overrides_.end()) patient = o->second.patient;
    if (patient) {
      auto index = patients_.Intern(*patient);
      if (index.ok()) {
        r.patient = *index;
      } else {
        patient.reset();
      }
    }
    if (!patient) {
      r.unassigned = true;
      auto placeholder = patients_.Intern(PlaceholderPatient(d.config.id));
      r.patient = placeholder.ok() ? *placeholder : 0;
    }
    r.any = d.config.allow_any_patient;
    for (const std::string& id : d.config.allowed_patients) {
      if (auto p = patients_.Find(id)) r.allowed.push_back(*p);
    }
    return r;
  }

  static EngineDevice MakeEngineDevice(const DeviceSetup& d, const DeviceRouting& routing) {
    EngineDevice ed;
    ed.id = d.config.id;
    ed.patient = routing.patient;
    ed.unassigned = routing.unassigned;
    if (d.config.no_data_s) ed.no_data_ms = static_cast<std::int64_t>(*d.config.no_data_s * 1000);
    if (d.config.disconnect_alarm_s) {
      ed.disconnect_alarm_ms = static_cast<std::int64_t>(*d.config.disconnect_alarm_s * 1000);
    }
    ed.intermittent = d.config.intermittent || d.config.spot;
    return ed;
  }

  void RestoreState(OutboxStore& store, const std::optional<PayloadKey>& key, AlertSink& sink) {
    auto records = store.LoadRecordKeys(clock_.WallMs() - 366ll * 86'400'000);
    if (records.ok()) {
      for (const RecordKey& r : *records) {
        if (auto d = device_names_.Find(r.device)) engine_->AddKnownRecord(static_cast<DeviceIndex>(*d), r.key);
      }
    }
    auto states = store.LoadOpenAlarms();
    if (!states.ok()) {
      spdlog::error("storage: cannot read open alarms: {}", states.status().message());
      return;
    }
    std::vector<std::string> plain;
    for (std::string& s : *states) {
      if (!s.empty() && s.front() != '{' && key) {
        auto sealed = AeadUnpack(s);
        if (!sealed.ok()) continue;
        auto opened = AeadOpen(key->key, BodyAad(true, RowFormat::kSingle, 0), *sealed);
        if (!opened.ok()) continue;
        s = std::move(*opened);
      }
      plain.push_back(std::move(s));
    }
    const int bad = engine_->Restore(plain, clock_.WallMs(), clock_.MonotonicNs(), sink);
    if (!plain.empty()) {
      spdlog::info("storage: {} open alarms carried over from before the restart{}", plain.size() - static_cast<std::size_t>(bad),
                   bad > 0 ? " (" + std::to_string(bad) + " unreadable, dropped)" : "");
    }
  }

  std::shared_ptr<const RenderContext> MakeRenderContext() const {
    auto ctx = std::make_shared<RenderContext>();
    const config::Config& cfg = loaded_.config;
    ctx->gateway_id = cfg.gateway_id;
    ctx->site = cfg.site;
    ctx->version = VITALGATE_VERSION;
    for (const DeviceSetup& d : loaded_.devices) {
      DeviceInfo info;
      info.id = d.config.id;
      info.transport = std::string(d.transport->name);
      info.codec = d.codec_options.value("type", "");
      info.ble_address = d.transport_options.value("address", "");
      if (info.transport == "serial") info.serial_path = d.transport_options.value("path", "");
      if (info.transport == "tcp") {
        info.endpoint = d.transport_options.value("host", "") + ":" +
                        std::to_string(d.transport_options.value("port", 0));
      }
      info.serial_number = d.config.serial_number;
      info.manufacturer = d.config.manufacturer;
      info.model = d.config.model;
      ctx->devices.emplace(info.id, info);
    }
    for (const config::PatientConfig& p : cfg.patients) {
      ctx->patients.emplace(p.id, PatientInfo{p.id, p.location});
    }
    std::shared_ptr<const RuleBook> rules = loaded_.rules;
    // The patients' indexes as the rules were compiled for them, copied here on the control
    // thread: destinations look limits up on their own threads, per reading.
    auto indexes = std::make_shared<std::map<std::string, PatientIndex, std::less<>>>();
    for (PatientIndex i = 0; i < patients_.size(); ++i) indexes->emplace(patients_.Name(i), i);
    ctx->limits = [rules, indexes](std::string_view patient, Metric metric) {
      ActiveLimits out;
      const auto it = indexes->find(patient);
      const bool found = it != indexes->end();
      const PatientIndex index = found ? it->second : 0;
      const ThresholdRule& th = (found ? rules->For(index) : rules->defaults())
                                    .thresholds[static_cast<std::size_t>(metric)];
      if (!th.enabled) return out;
      if (!th.low.empty()) out.low = th.low.front().limit;
      if (!th.high.empty()) out.high = th.high.front().limit;
      return out;
    };
    return ctx;
  }

  bool StartDestination(std::size_t i, int bit, const std::optional<PayloadKey>& payload_key) {
    const DestinationSetup& d = loaded_.destinations[i];
    auto link = d.descriptor->make(d.options);
    if (!link.ok()) {
      spdlog::critical("{}: {}", d.config.path, link.status().message());
      return false;
    }
    RequestDestinationOptions o;
    o.name = d.config.name;
    o.store_path = loaded_.config.storage.path;
    o.bit = bit;
    if (payload_key) o.at_rest_key = payload_key->key;
    o.scheduling.max_items_per_message = d.descriptor->max_batch;
    o.scheduling.align_to_rows = true;
    o.scheduling.take_readings = d.config.readings;
    o.scheduling.take_alerts = d.config.alerts;
    o.scheduling.take_audit = d.config.audit;
    o.scheduling.take_unassigned = d.config.include_unassigned;
    o.reconnect_min_ms = d.config.reconnect_min_ms;
    o.reconnect_max_ms = d.config.reconnect_max_ms;
    o.timeout = std::chrono::milliseconds(
        static_cast<std::int64_t>(d.options.value("timeout_s", 30.0) * 1000));
    DestinationStats* stats = AddDestinationStats(d.config.name, d.config.type, (*link)->Describe());
    destinations_.push_back(std::make_unique<RequestDestination>(
        o, std::move(*link), render_context_, delivered_, *destination_bells_[i], clock_, stats_, *stats));
    return true;
  }

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

  std::string StateDir() const {
    // Transport state (e.g. BLE glucose record numbers) lives next to the outbox: the same
    // private, persistent directory.
    std::string dir = std::filesystem::path(loaded_.config.storage.path).parent_path().string();
    return dir.empty() ? "." : dir;
  }

  struct LiveDevice {
    DeviceIndex index = 0;
    DeviceSetup setup;
    std::unique_ptr<DeviceInput> input;
    std::unique_ptr<Transport> transport;
  };

  // Builds and starts one device's input and transport (control thread).
  Result<LiveDevice> StartDevice(DeviceIndex index, const DeviceSetup& d) {
    LiveDevice live;
    live.index = index;
    live.setup = d;
    auto codec = MakeCodec(d.codec_options);
    if (!codec.ok()) return codec.status().WithContext("device " + d.config.id + ": codec");
    DeviceTimePolicy time;
    time.max_ahead_ms = d.config.clock.max_ahead_ms;
    time.max_behind_ms = d.config.clock.max_behind_ms;
    time.max_record_age_ms = d.config.clock.max_record_age_ms;
    time.spot = d.config.spot;
    IngressPort port{&io_ring_, &wake_engine_};
    live.input = std::make_unique<DeviceInput>(index, d.config.id, RoutingFor(d), std::move(*codec),
                                               port, patients_, *stats_.devices[index], clock_, time);
    TransportContext ctx{&io_, &clock_, d.config.id, live.input.get(), StateDir(), {}};
    ctx.characteristics.assign(d.codec->characteristics.begin(), d.codec->characteristics.end());
    auto transport = d.transport->make(ctx, d.transport_options);
    if (!transport.ok()) return transport.status().WithContext("device " + d.config.id + ": transport");
    live.transport = std::move(*transport);
    live.transport->Start();
    return live;
  }

  bool StartDevices() {
    for (std::size_t i = 0; i < loaded_.devices.size(); ++i) {
      auto live = StartDevice(static_cast<DeviceIndex>(i), loaded_.devices[i]);
      if (!live.ok()) {
        spdlog::critical("{}", live.status().message());
        return false;
      }
      live_.push_back(std::move(*live));
    }
    return true;
  }

  LiveDevice* FindLive(std::string_view id) {
    for (LiveDevice& l : live_) {
      if (l.setup.config.id == id) return &l;
    }
    return nullptr;
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

  // Keys read once at start: a reload that changes them says so.
  std::vector<std::string> RestartOnlyChanges(const LoadedConfig& next) const {
    std::vector<std::string> changed;
    const nlohmann::json& a = loaded_.effective;
    const nlohmann::json& b = next.effective;
    auto diff = [&](const nlohmann::json& x, const nlohmann::json& y, const std::string& prefix) {
      if (!x.is_object() || !y.is_object()) {
        if (x != y) changed.push_back(prefix);
        return;
      }
      std::set<std::string> keys;
      for (const auto& [k, v] : x.items()) keys.insert(k);
      for (const auto& [k, v] : y.items()) keys.insert(k);
      for (const std::string& k : keys) {
        if (prefix == "gateway" && k == "log_level") continue;  // applied at once
        const nlohmann::json nx = x.contains(k) ? x[k] : nlohmann::json();
        const nlohmann::json ny = y.contains(k) ? y[k] : nlohmann::json();
        if (nx != ny) changed.push_back(prefix + "." + k);
      }
    };
    for (const char* section : {"gateway", "storage", "mqtt", "http"}) {
      diff(a.value(section, nlohmann::json::object()), b.value(section, nlohmann::json::object()), section);
    }
    if (a.value("destinations", nlohmann::json::array()) != b.value("destinations", nlohmann::json::array())) {
      changed.push_back("destinations");
    }
    return changed;
  }

  void Reload() {
    sd_notify(0, "RELOADING=1");
    auto reloaded = LoadEverything(config_path_, patients_);
    last_reload_ms_ = clock_.WallMs();
    if (!reloaded.ok()) {
      spdlog::error("reload: keeping the running configuration: {}", reloaded.status().message());
      last_reload_ok_ = false;
      last_reload_error_ = reloaded.status().message();
      Audit("reload", "sighup", "{\"applied\":false}");
      sd_notify(0, "READY=1");
      return;
    }
    last_reload_ok_ = true;
    last_reload_error_.clear();
    const std::vector<std::string> restart = RestartOnlyChanges(*reloaded);
    for (const std::string& w : reloaded->warnings) spdlog::warn("reload: {}", w);
    SetLogLevel(reloaded->config.log_level);
    runner_->PostRules(reloaded->rules);
    // Devices: removed, added, changed, moved.
    std::vector<std::string> summary;
    std::map<std::string, const DeviceSetup*> next;
    for (const DeviceSetup& d : reloaded->devices) next[d.config.id] = &d;
    for (auto it = live_.begin(); it != live_.end();) {
      if (next.count(it->setup.config.id) == 0) {
        it->transport->Stop();
        stats_.devices[it->index]->removed.store(true);
        DeviceChange change;
        change.kind = DeviceChange::Kind::kRemove;
        change.index = it->index;
        runner_->PostDeviceChange(std::move(change), kEngineAnswer);
        summary.push_back("removed " + it->setup.config.id);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    std::size_t effective_index = 0;
    for (const DeviceSetup& d : reloaded->devices) {
      const nlohmann::json& eff = reloaded->effective["devices"][effective_index++];
      LiveDevice* live = FindLive(d.config.id);
      if (live == nullptr) {
        auto index = device_names_.Intern(d.config.id);
        if (!index.ok()) {
          spdlog::error("reload: device {}: {}", d.config.id, index.status().message());
          continue;
        }
        const auto di = static_cast<DeviceIndex>(*index);
        DeviceStats& ds = StatsFor(di, d);
        DeviceChange change;
        change.index = di;
        change.device = MakeEngineDevice(d, RoutingFor(d));
        change.stats = &ds;
        // The engine must know the device before its first reading.
        runner_->PostDeviceChange(std::move(change), kEngineAnswer);
        auto started = StartDevice(di, d);
        if (!started.ok()) {
          spdlog::error("reload: {}", started.status().message());
          continue;
        }
        live_.push_back(std::move(*started));
        summary.push_back("added " + d.config.id);
        continue;
      }
      const nlohmann::json& before = EffectiveOf(live->setup.config.id);
      if (DeviceIdentity(before) != DeviceIdentity(eff)) {
        // Transport, codec or time handling changed: restart the device, same index. The
        // engine gets its new patient and technical limits before its first new reading.
        live->transport->Stop();
        DeviceChange change;
        change.kind = DeviceChange::Kind::kUpdate;
        change.index = live->index;
        change.device = MakeEngineDevice(d, RoutingFor(d));
        change.stats = &StatsFor(live->index, d);
        runner_->PostDeviceChange(std::move(change), kEngineAnswer);
        auto started = StartDevice(live->index, d);
        if (!started.ok()) {
          spdlog::error("reload: {}", started.status().message());
          continue;
        }
        *live = std::move(*started);
        summary.push_back("restarted " + d.config.id);
      } else {
        const std::string from = patients_.Name(live->input->routing().patient);
        live->setup = d;
        DeviceRouting routing = RoutingFor(d);
        const bool moved = routing.patient != live->input->routing().patient ||
                           routing.unassigned != live->input->routing().unassigned;
        live->input->SetRouting(routing);
        if (moved) {
          summary.push_back("moved " + d.config.id + " from " + from + " to " +
                            patients_.Name(routing.patient));
        }
      }
    }
    const std::string before_hash = ConfigHash(loaded_.effective);
    loaded_ = std::move(*reloaded);
    render_context_.Set(MakeRenderContext());
    spdlog::info("reload: rules, patients and devices reloaded ({} patients, {} devices){}{}",
                 loaded_.config.patients.size(), loaded_.devices.size(),
                 summary.empty() ? "" : ": ", Join(summary));
    if (!restart.empty()) {
      spdlog::warn("reload: these settings take effect at the next restart: {}", Join(restart));
    }
    // Certificates and keys are re-read when their files changed (rotation without restart);
    // LoadEverything has checked them, so a broken rotation never replaces a working link.
    const std::string fingerprint = TlsFingerprint();
    if (fingerprint != tls_fingerprint_) {
      tls_fingerprint_ = fingerprint;
      forwarder_->RequestReconnect();
      std::string detail = "{\"certificates\":[";
      for (std::size_t i = 0; i < loaded_.certificates.size(); ++i) {
        const CertificateInfo& c = loaded_.certificates[i];
        if (i > 0) detail += ',';
        detail += "{\"key\":";
        AppendJsonString(detail, c.key);
        detail += ",\"subject\":";
        AppendJsonString(detail, c.subject);
        detail += ",\"not_after\":\"" + FormatRfc3339(c.not_after * 1000) + "\"}";
      }
      detail += "]}";
      Audit("certificate", "sighup", detail);
      CheckCertificates();
    }
    Audit("reload", "sighup",
          "{\"config_before\":\"" + before_hash + "\",\"config_after\":\"" + ConfigHash(loaded_.effective) +
              "\",\"restart_needed\":" + std::to_string(restart.size()) + "}");
    sd_notify(0, "READY=1");
  }

  const nlohmann::json& EffectiveOf(const std::string& device) const {
    static const nlohmann::json kNone;
    for (const auto& d : loaded_.effective["devices"]) {
      if (d.value("id", "") == device) return d;
    }
    return kNone;
  }

  static std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
    return out;
  }

  static std::string ConfigHash(const nlohmann::json& effective) {
    return Sha256Hex(effective.dump());
  }

  void Audit(std::string kind, std::string actor, std::string detail) {
    StoreCommand c;
    c.audit.push_back(StoreCommand::Audit{std::move(kind), std::move(actor), std::move(detail),
                                          clock_.WallMs()});
    writer_->Submit(std::move(c));
  }

  // cmd/assign, on the control thread: kept in the store first, then applied.
  void OnAssign(AssignCommand cmd) {
    LiveDevice* live = FindLive(cmd.device);
    if (live == nullptr) {
      stats_.downlink_rejected.fetch_add(1, std::memory_order_relaxed);
      stats_.downlink_refused[static_cast<std::size_t>(DownlinkRefusal::kInvalid)].fetch_add(1);
      spdlog::warn("mqtt: downlink message ignored: cmd/assign: no device \"{}\" on this gateway",
                   cmd.device);
      return;
    }
    if (cmd.patient && !patients_.Intern(*cmd.patient).ok()) {
      spdlog::warn("mqtt: downlink message ignored: cmd/assign: too many patients");
      return;
    }
    Assignment a{cmd.device, cmd.patient, cmd.by, clock_.WallMs()};
    StoreCommand c;
    c.assignments.push_back(a);
    std::string detail = "{\"device\":";
    AppendJsonString(detail, cmd.device);
    detail += ",\"patient\":";
    if (cmd.patient) {
      AppendJsonString(detail, *cmd.patient);
    } else {
      detail += "null";
    }
    detail += "}";
    c.audit.push_back(StoreCommand::Audit{"assign", cmd.by, detail, a.ts_ms});
    c.done = [this, a](const Status& s) {
      boost::asio::post(io_, [this, a, s] { ApplyAssignment(a, s); });
    };
    writer_->Submit(std::move(c));
  }

  void ApplyAssignment(const Assignment& a, const Status& stored) {
    if (!stored.ok()) {
      spdlog::error("assign: device {}: not stored ({}); applied until the next restart", a.device,
                    stored.message());
    }
    overrides_[a.device] = a;
    LiveDevice* live = FindLive(a.device);
    if (live == nullptr) return;
    const std::string from = patients_.Name(live->input->routing().patient);
    DeviceRouting routing = RoutingFor(live->setup);
    live->input->SetRouting(routing);
    spdlog::info("assign: device {} moved from {} to {} by {}", a.device, from,
                 patients_.Name(routing.patient), a.by);
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

  // One structured journal entry per alarm event (no vital values: the message is not logged).
  void LogAlarm(const AlertEvent& e) {
    const std::string id = ids_->Format(e.alarm_id);
    const std::string& patient = patients_.Name(e.patient);
    const std::string what = e.metric ? std::string(Info(*e.metric).name)
                             : e.condition ? std::string(Name(*e.condition)) : std::string(Name(e.kind));
    const std::string device = e.device && *e.device < device_names_.size() ? device_names_.Name(*e.device) : "";
    const std::string line = "alarm " + id + " " + std::string(Name(e.state)) + ": " +
                             std::string(Name(e.kind)) + " " + what + ", priority " +
                             std::string(Name(e.priority)) + ", patient " + patient +
                             (device.empty() ? "" : ", device " + device) +
                             (e.acked_by.empty() ? "" : ", acknowledged by " + e.acked_by);
    if (journal_) {
      const int level = e.priority == Priority::kHigh && e.state == AlertState::kActive ? LOG_WARNING : LOG_NOTICE;
      sd_journal_send("MESSAGE=%s", line.c_str(), "PRIORITY=%i", level, "ALARM_ID=%s", id.c_str(),
                      "ALARM_KIND=%s", std::string(Name(e.kind)).c_str(), "ALARM_WHAT=%s", what.c_str(),
                      "PATIENT=%s", patient.c_str(), "DEVICE=%s", device.c_str(),
                      "ALARM_PRIORITY=%s", std::string(Name(e.priority)).c_str(),
                      "ALARM_STATE=%s", std::string(Name(e.state)).c_str(),
                      "ACKNOWLEDGED_BY=%s", e.acked_by.c_str(), nullptr);
    } else {
      spdlog::info("{}", line);
    }
  }

  // The `certificate` alarm: the expiry ladder (low, medium, high days before notAfter), an
  // expired or not yet valid certificate, or a broker that refuses the gateway's certificate.
  void CheckCertificates() {
    const std::int64_t now_s = clock_.WallMs() / 1000;
    const auto& days = loaded_.config.certificate_alarm_days;
    std::optional<Priority> worst;
    std::string detail;
    for (const CertificateInfo& c : loaded_.certificates) {
      const std::int64_t left = c.not_after - now_s;
      std::optional<Priority> p;
      std::string what;
      if (left <= 0) {
        p = Priority::kHigh;
        what = "expired " + FormatRfc3339(c.not_after * 1000).substr(0, 10);
      } else if (c.not_before > now_s) {
        p = Priority::kHigh;
        what = "not valid before " + FormatRfc3339(c.not_before * 1000).substr(0, 10);
      } else {
        const std::int64_t left_days = left / 86400;
        if (left_days < days[2]) {
          p = Priority::kHigh;
        } else if (left_days < days[1]) {
          p = Priority::kMedium;
        } else if (left_days < days[0]) {
          p = Priority::kLow;
        }
        what = "expires " + FormatRfc3339(c.not_after * 1000).substr(0, 10) + " (in " +
               std::to_string(left_days) + " days)";
      }
      if (!p) continue;
      detail += (detail.empty() ? "" : "; ") + c.key + " " + c.subject + " " + what;
      if (!worst || *p > *worst) worst = p;
    }
    const std::string rejected = stats_.client_certificate_rejected.Get();
    if (!rejected.empty()) {
      worst = Priority::kHigh;
      detail += std::string(detail.empty() ? "" : "; ") + "the broker refuses the gateway's certificate (" +
                rejected + ")";
    }
    if (detail == certificate_problem_ && worst == certificate_priority_) return;
    certificate_problem_ = detail;
    certificate_priority_ = worst;
    if (worst) spdlog::warn("certificate: {}", detail);
    runner_->PostGatewayCondition(DeviceCondition::kCertificate, worst.has_value(),
                                  worst ? detail : "certificates valid", worst);
  }

  void PruneAudit() {
    StoreCommand c;
    c.prune_audit_before_ms =
        clock_.WallMs() - static_cast<std::int64_t>(loaded_.config.audit_retention_days) * 86'400'000;
    writer_->Submit(std::move(c));
  }

  // A destination whose oldest undelivered item is older than its limit, or that refused
  // items for good lately, raises the technical alarm `destination`.
  void CheckDestinations() {
    const std::int64_t now = clock_.WallMs();
    std::string problems;
    for (std::size_t i = 0; i < stats_.destinations.size(); ++i) {
      const DestinationStats& d = *stats_.destinations[i];
      const std::int64_t limit = i == 0 ? loaded_.config.primary_backlog_alarm_ms
                                        : loaded_.destinations[i - 1].config.backlog_alarm_ms;
      const std::int64_t oldest = d.oldest_unacked_rx_ms.load();
      if (oldest > 0 && now - oldest > limit) {
        problems += (problems.empty() ? "" : "; ") + d.name + ": oldest undelivered item " +
                    std::to_string((now - oldest) / 1000) + " s old";
      }
      const std::uint64_t dead = d.dead_letters.load();
      auto& seen = dead_seen_[d.name];
      if (dead != seen.first) {
        seen = {dead, now};
      }
      if (seen.second != 0 && now - seen.second < 3'600'000) {
        problems += (problems.empty() ? "" : "; ") + d.name + ": " + std::to_string(dead) +
                    " items refused for good (dead letters)";
      }
    }
    if (problems != destination_problems_) {
      destination_problems_ = problems;
      runner_->PostGatewayCondition(DeviceCondition::kDestination, !problems.empty(),
                                    problems.empty() ? "destinations deliver again" : problems);
    }
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
      CheckDestinations();
      // Certificates: every minute, and at once when the broker starts or stops refusing ours.
      const bool rejected = !stats_.client_certificate_rejected.Get().empty();
      if (++watchdog_ticks_ % 60 == 1 || rejected != certificate_rejected_) {
        certificate_rejected_ = rejected;
        CheckCertificates();
      }
      if (watchdog_ticks_ % 86400 == 60) PruneAudit();
      ArmWatchdog();
    });
  }

  void Shutdown() {
    if (http_) http_->Stop();
    for (LiveDevice& l : live_) l.transport->Stop();
    if (runner_) {
      runner_->RequestStop();
      runner_->Join();
    }
    if (writer_) {
      writer_->RequestStop();
      writer_->Join();
    }
    for (auto& d : destinations_) d->RequestStop();
    if (forwarder_) {
      forwarder_->RequestStop();
      forwarder_->Join();
    }
    for (auto& d : destinations_) d->Join();
    spdlog::info("stopped: {} readings committed, {} waiting for delivery",
                 stats_.readings_committed.load(), stats_.backlog_readings.load());
  }

  LoadedConfig loaded_;
  std::string config_path_;
  PatientDirectory& patients_;
  DeviceDirectory device_names_;
  std::map<std::string, Assignment> overrides_;  // by device id, from cmd/assign
  SystemClock clock_;
  GatewayStats stats_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer watchdog_;
  std::string store_error_;
  std::int64_t started_ms_ = 0;
  std::unique_ptr<IdFormat> ids_;
  VolatileQueue volatile_;
  std::unique_ptr<Engine> engine_;
  SpscRing<IngressItem> io_ring_{kIngressCapacity};
  SpscRing<AckRequest> ack_ring_{kAckCapacity};
  SpscRing<Reading> readings_out_{kReadingsOutCapacity};
  SpscRing<AlertEvent> alerts_out_{kAlertsOutCapacity};
  Doorbell wake_engine_, wake_store_, wake_forwarder_;
  std::vector<std::unique_ptr<Doorbell>> destination_bells_;
  DeliveryQueue delivered_;
  RenderContextHolder render_context_;
  std::unique_ptr<EngineRunner> runner_;
  std::unique_ptr<OutboxWriter> writer_;
  std::unique_ptr<DownlinkGate> gate_;
  std::unique_ptr<Forwarder> forwarder_;
  DestinationStats* primary_stats_ = nullptr;
  std::vector<std::unique_ptr<RequestDestination>> destinations_;
  std::vector<LiveDevice> live_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<PayloadSealer> sealer_;
  std::string tls_fingerprint_;
  std::string destination_problems_;
  std::string certificate_problem_;
  std::optional<Priority> certificate_priority_;
  std::uint64_t watchdog_ticks_ = 0;
  bool certificate_rejected_ = false;
  bool journal_ = ::access("/run/systemd/journal/socket", W_OK) == 0;
  bool last_reload_ok_ = true;
  std::int64_t last_reload_ms_ = 0;
  std::string last_reload_error_;
  std::map<std::string, std::pair<std::uint64_t, std::int64_t>> dead_seen_;
  RateLimiter downlink_log_;
  std::uint64_t downlink_suppressed_ = 0;
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
