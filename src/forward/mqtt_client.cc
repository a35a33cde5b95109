#include "vitalgate/forward/mqtt_client.h"

#include <mosquitto.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vg {
namespace {

std::string ConnackReason(int rc) {
  const char* s = mosquitto_connack_string(rc);
  return s != nullptr ? s : "connection refused";
}

class MosquittoClient final : public MqttClient {
 public:
  MosquittoClient(MqttClientOptions options, MqttCallbacks callbacks)
      : options_(std::move(options)), callbacks_(std::move(callbacks)) {}
  ~MosquittoClient() override {
    if (mosq_ != nullptr) mosquitto_destroy(mosq_);
  }

  Status Init() {
    mosq_ = mosquitto_new(options_.client_id.c_str(), /*clean_session=*/true, this);
    if (mosq_ == nullptr) return Internal("mqtt: cannot create client");
    return Configure();
  }

  Status Connect() override {
    tls_error_.clear();
    last_error_.clear();
    if (!options_.will_topic.empty() && options_.will_payload) {
      const std::string will = options_.will_payload();
      mosquitto_will_set(mosq_, options_.will_topic.c_str(), static_cast<int>(will.size()),
                         will.data(), 1, true);
    }
    const int rc = mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port,
                                           options_.keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::string why = Error(rc);
      if (!tls_error_.empty()) why += " (" + tls_error_ + ")";
      last_error_ = why;
      return Unavailable("mqtt: connect to " + options_.host + ":" + std::to_string(options_.port) +
                         ": " + why);
    }
    return Status::Ok();
  }

  Result<int> Publish(std::string_view topic, std::string_view payload, int qos,
                      bool retain) override {
    int mid = 0;
    const std::string t(topic);
    const int rc = mosquitto_publish(mosq_, &mid, t.c_str(), static_cast<int>(payload.size()),
                                     payload.data(), qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) return Unavailable("mqtt: publish: " + Error(rc));
    return mid;
  }

  Status Subscribe(std::string_view topic, int qos) override {
    const std::string t(topic);
    const int rc = mosquitto_subscribe(mosq_, nullptr, t.c_str(), qos);
    if (rc != MOSQ_ERR_SUCCESS) return Unavailable("mqtt: subscribe: " + Error(rc));
    return Status::Ok();
  }

  void Disconnect() override { mosquitto_disconnect(mosq_); }

  void Reset() override {
    // mosquitto_reinitialise() clears every queued message and all options; set them again.
    mosquitto_reinitialise(mosq_, options_.client_id.c_str(), true, this);
    const Status s = Configure();
    (void)s;  // the same options succeeded in Init()
  }

  int Socket() const override { return mosquitto_socket(mosq_); }
  bool WantWrite() const override { return mosquitto_want_write(mosq_); }
  int LoopRead() override { return Check(mosquitto_loop_read(mosq_, 1)); }
  int LoopWrite() override { return Check(mosquitto_loop_write(mosq_, 1)); }
  int LoopMisc() override { return Check(mosquitto_loop_misc(mosq_)); }
  std::string LastError() const override { return last_error_; }

 private:
  int Check(int rc) {
    if (rc == MOSQ_ERR_SUCCESS) return 0;
    std::string reason = Error(rc);
    if (!tls_error_.empty()) reason += " (" + tls_error_ + ")";
    last_error_ = reason;
    return rc;
  }

  static std::string Error(int rc) {
    if (rc == MOSQ_ERR_ERRNO) return std::string("system error: ") + std::strerror(errno);
    return mosquitto_strerror(rc);
  }

  Status Configure() {
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
    // The forwarder keeps its own window of unacknowledged messages.
    mosquitto_max_inflight_messages_set(mosq_, 0);
    mosquitto_log_callback_set(mosq_, [](mosquitto*, void* self, int level, const char* text) {
      // libmosquitto reports TLS failures (e.g. "certificate verify failed") only here.
      auto* c = static_cast<MosquittoClient*>(self);
      if ((level & MOSQ_LOG_ERR) != 0 && text != nullptr) c->tls_error_ = text;
    });
    mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      auto* c = static_cast<MosquittoClient*>(self);
      if (c->callbacks_.on_connect) c->callbacks_.on_connect(rc, ConnackReason(rc));
    });
    mosquitto_disconnect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      auto* c = static_cast<MosquittoClient*>(self);
      if (c->callbacks_.on_disconnect) c->callbacks_.on_disconnect(rc, Error(rc));
    });
    mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int mid) {
      auto* c = static_cast<MosquittoClient*>(self);
      if (c->callbacks_.on_publish) c->callbacks_.on_publish(mid);
    });
    mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
      auto* c = static_cast<MosquittoClient*>(self);
      if (c->callbacks_.on_message && m->topic != nullptr) {
        c->callbacks_.on_message(
            m->topic,
            std::string_view(static_cast<const char*>(m->payload),
                             static_cast<std::size_t>(m->payloadlen > 0 ? m->payloadlen : 0)),
            m->retain);
      }
    });
    if (options_.tls) {
      int rc = mosquitto_tls_set(mosq_, options_.ca_file.c_str(), nullptr,
                                 options_.cert_file.empty() ? nullptr : options_.cert_file.c_str(),
                                 options_.key_file.empty() ? nullptr : options_.key_file.c_str(),
                                 nullptr);
      if (rc != MOSQ_ERR_SUCCESS) return InvalidArgument("mqtt.tls: " + Error(rc));
      const std::string version = "tlsv" + options_.tls_min_version;
      rc = mosquitto_tls_opts_set(mosq_, 1 /*SSL_VERIFY_PEER*/, version.c_str(), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) return InvalidArgument("mqtt.tls.min_version: " + Error(rc));
      mosquitto_tls_insecure_set(mosq_, false);  // verify the broker's name against its cert
    }
    if (!options_.username.empty()) {
      const int rc = mosquitto_username_pw_set(
          mosq_, options_.username.c_str(),
          options_.password.empty() ? nullptr : options_.password.c_str());
      if (rc != MOSQ_ERR_SUCCESS) return InvalidArgument("mqtt.username: " + Error(rc));
    }
    return Status::Ok();
  }

  MqttClientOptions options_;
  MqttCallbacks callbacks_;
  mosquitto* mosq_ = nullptr;
  std::string last_error_;
  std::string tls_error_;
};

}  // namespace

Result<std::unique_ptr<MqttClient>> MakeMosquittoClient(const MqttClientOptions& options,
                                                        MqttCallbacks callbacks) {
  auto client = std::make_unique<MosquittoClient>(options, std::move(callbacks));
  VG_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<MqttClient>(std::move(client));
}

}  // namespace vg
