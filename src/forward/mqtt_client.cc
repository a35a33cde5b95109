#include "vitalgate/forward/mqtt_client.h"

#include <arpa/inet.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vg {

std::string_view Name(TlsFailure failure) {
  switch (failure) {
    case TlsFailure::kNone: return "none";
    case TlsFailure::kExpired: return "expired";
    case TlsFailure::kNotYetValid: return "not_yet_valid";
    case TlsFailure::kUnknownCa: return "unknown_ca";
    case TlsFailure::kNameMismatch: return "name_mismatch";
    case TlsFailure::kOtherVerify: return "verify_failed";
    case TlsFailure::kClientRejected: return "client_certificate_rejected";
  }
  return "?";
}

namespace {

// Index of the client in its SSL_CTX's ex_data (one per process).
int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// RFC 6125: an IP address matches only an IP subjectAltName; a host name matches a DNS
// subjectAltName, and the subject's CN only when the certificate has no subjectAltName at all.
bool NameMatches(X509* cert, const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  std::string bare = host;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  if (::inet_pton(AF_INET, bare.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, bare.c_str(), &a6) == 1) {
    return X509_check_ip_asc(cert, bare.c_str(), 0) == 1;
  }
  const bool has_san = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) >= 0;
  unsigned int flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
  if (has_san) flags |= X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
  return X509_check_host(cert, bare.c_str(), bare.size(), flags, nullptr) == 1;
}

TlsFailure FailureOf(int x509_error) {
  switch (x509_error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return TlsFailure::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return TlsFailure::kNotYetValid;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return TlsFailure::kUnknownCa;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return TlsFailure::kNameMismatch;
    default:
      return TlsFailure::kOtherVerify;
  }
}

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
    tls_failure_ = TlsFailure::kNone;
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

  TlsFailure LastTlsFailure() const override { return tls_failure_; }

  // OpenSSL's verify callback: records why the broker's certificate is refused, and checks its
  // name the RFC 6125 way (libmosquitto's own check falls back to the CN when the certificate
  // has only IP subjectAltNames).
  static int Verify(int ok, X509_STORE_CTX* store) {
    SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl != nullptr ? static_cast<MosquittoClient*>(
                                      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()))
                                : nullptr;
    if (self == nullptr) return 0;
    const int depth = X509_STORE_CTX_get_error_depth(store);
    if (!ok) {
      const int err = X509_STORE_CTX_get_error(store);
      self->tls_failure_ = FailureOf(err);
      self->tls_error_ = std::string("certificate verify failed: the broker's certificate") +
                         (depth > 0 ? " chain" : "") + " is refused (" +
                         std::string(Name(self->tls_failure_)) + "): " +
                         X509_verify_cert_error_string(err);
      return 0;
    }
    if (depth == 0 && !NameMatches(X509_STORE_CTX_get_current_cert(store), self->options_.host)) {
      self->tls_failure_ = TlsFailure::kNameMismatch;
      self->tls_error_ = "certificate verify failed: the broker's certificate is refused "
                         "(name_mismatch): it does not name \"" + self->options_.host +
                         "\" in its subjectAltName";
      X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
      return 0;
    }
    return 1;
  }

  // TLS alerts from the broker: a refused client certificate shows here ("unknown ca", "bad
  // certificate", "certificate expired"), often after the client's side of the handshake.
  static void Info(const SSL* ssl, int where, int value) {
    // SSL_CB_READ_ALERT and SSL_CB_WRITE_ALERT share the SSL_CB_ALERT bit: an alert the gateway
    // sends (its own verification failed) is not the broker's verdict.
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT) return;
    auto* self = static_cast<MosquittoClient*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
    if (self == nullptr || (value >> 8) != SSL3_AL_FATAL) return;
    const std::string alert = SSL_alert_desc_string_long(value);
    if (alert == "close notify") return;
    if (self->tls_failure_ == TlsFailure::kNone) {
      const bool about_us = alert == "unknown CA" || alert == "bad certificate" ||
                            alert == "certificate expired" || alert == "certificate revoked" ||
                            alert == "unsupported certificate" || alert == "certificate unknown" ||
                            alert == "access denied" || alert == "certificate required";
      if (about_us) self->tls_failure_ = TlsFailure::kClientRejected;
    }
    self->tls_error_ = "the broker ended the TLS handshake: " + alert +
                       (self->tls_failure_ == TlsFailure::kClientRejected
                            ? " (it refuses the gateway's certificate)"
                            : "");
  }

  int Socket() const override { return mosquitto_socket(mosq_); }
  bool WantWrite() const override { return mosquitto_want_write(mosq_); }
  // With read-ahead (ConfigureTls) OpenSSL reads several records per system call, so whole
  // records can wait in its buffer after the socket is drained, and poll would not report them:
  // read on while one is there. SSL_peek tells a whole record (data to read: libmosquitto will
  // take at least a byte of it) from the start of one still arriving (no data: the socket will
  // be readable again when the rest comes). The bound only guards against a broker that never
  // stops sending.
  int LoopRead() override {
    int rc = Check(mosquitto_loop_read(mosq_, 1));
    for (int round = 0; rc == 0 && round < 4096; ++round) {
      auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq_));
      if (ssl == nullptr || SSL_has_pending(ssl) != 1) break;
      char first = 0;
      if (SSL_peek(ssl, &first, 1) <= 0) {
        ERR_clear_error();  // a record still arriving, or an error the next read reports
        break;
      }
      rc = Check(mosquitto_loop_read(mosq_, 1));
    }
    return rc;
  }
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
      // Our own verification's reason, when there is one, says more.
      if ((level & MOSQ_LOG_ERR) != 0 && text != nullptr && c->tls_failure_ == TlsFailure::kNone) {
        c->tls_error_ = text;
      }
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
    if (options_.tls) VG_RETURN_IF_ERROR(ConfigureTls());
    if (!options_.username.empty()) {
      const int rc = mosquitto_username_pw_set(
          mosq_, options_.username.c_str(),
          options_.password.empty() ? nullptr : options_.password.c_str());
      if (rc != MOSQ_ERR_SUCCESS) return InvalidArgument("mqtt.username: " + Error(rc));
    }
    return Status::Ok();
  }

  // Our own SSL_CTX (the files read anew on every Reset, i.e. after a rotation), with the
  // verification above instead of libmosquitto's.
  Status ConfigureTls() {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr) return Internal("mqtt.tls: cannot create a TLS context");
    auto fail = [ctx](std::string why) {
      SSL_CTX_free(ctx);
      ERR_clear_error();
      return InvalidArgument(std::move(why));
    };
    SSL_CTX_set_min_proto_version(ctx, options_.tls_min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, options_.ca_file.c_str(), nullptr) != 1) {
      return fail("mqtt.tls.ca_file: " + options_.ca_file + ": cannot load the CA bundle");
    }
    if (!options_.cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx, options_.cert_file.c_str()) != 1) {
        return fail("mqtt.tls.cert_file: " + options_.cert_file + ": cannot load the certificate");
      }
      if (SSL_CTX_use_PrivateKey_file(ctx, options_.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(ctx) != 1) {
        return fail("mqtt.tls.key_file: " + options_.key_file + ": cannot load the key of cert_file");
      }
    }
    // One read system call for all the PUBACKs waiting, not two per acknowledgement (each is
    // its own TLS record); see LoopRead.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, &MosquittoClient::Verify);
    SSL_CTX_set_info_callback(ctx, &MosquittoClient::Info);
    SSL_CTX_set_ex_data(ctx, ContextIndex(), this);
    const int rc = mosquitto_void_option(mosq_, MOSQ_OPT_SSL_CTX, ctx);
    mosquitto_int_option(mosq_, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    SSL_CTX_free(ctx);  // libmosquitto holds its own reference
    if (rc != MOSQ_ERR_SUCCESS) return InvalidArgument("mqtt.tls: " + Error(rc));
    return Status::Ok();
  }

  MqttClientOptions options_;
  MqttCallbacks callbacks_;
  mosquitto* mosq_ = nullptr;
  std::string last_error_;
  std::string tls_error_;
  TlsFailure tls_failure_ = TlsFailure::kNone;
};

}  // namespace

Result<std::unique_ptr<MqttClient>> MakeMosquittoClient(const MqttClientOptions& options,
                                                        MqttCallbacks callbacks) {
  auto client = std::make_unique<MosquittoClient>(options, std::move(callbacks));
  VG_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<MqttClient>(std::move(client));
}

}  // namespace vg
