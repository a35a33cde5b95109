// MqttClient: the seam between the forwarder's delivery logic and the MQTT library.
//
// The production implementation drives libmosquitto from the forwarder's own poll loop
// (mosquitto_socket / loop_read / loop_write / loop_misc); tests substitute a fake. Callbacks
// run inside Loop*() calls on the calling thread. One thread owns a client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

struct MqttClientOptions {
  std::string host;
  int port = 8883;
  std::string client_id;
  int keepalive_s = 30;
  bool tls = false;
  std::string ca_file, cert_file, key_file;
  std::string tls_min_version = "1.2";
  std::string username;
  std::string password;
  std::string will_topic;
  // Built again before every connection attempt (the status message carries a time stamp).
  std::function<std::string()> will_payload;
};

// Why a TLS handshake with the broker failed, for logs and a labelled counter.
enum class TlsFailure : std::uint8_t {
  kNone,
  kExpired,          // the broker's certificate expired
  kNotYetValid,      // the broker's certificate is not valid yet
  kUnknownCa,        // not signed by mqtt.tls.ca_file
  kNameMismatch,     // does not name the host (subjectAltName; CN only without any SAN)
  kOtherVerify,      // another verification failure
  kClientRejected,   // the broker refused the gateway's own certificate (TLS alert)
};
inline constexpr std::size_t kTlsFailureCount = 7;
std::string_view Name(TlsFailure failure);

struct MqttCallbacks {
  std::function<void(int rc, std::string_view reason)> on_connect;  // rc 0 = accepted
  std::function<void(int rc, std::string_view reason)> on_disconnect;
  std::function<void(int mid)> on_publish;  // QoS 1 PUBACK received
  // `retained`: the broker delivered it from its retained store (not sent just now).
  std::function<void(std::string_view topic, std::string_view payload, bool retained)> on_message;
};

class MqttClient {
 public:
  virtual ~MqttClient() = default;
  // Starts a non-blocking connection attempt; the outcome arrives via on_connect/on_disconnect.
  virtual Status Connect() = 0;
  // Queues a message; returns its message id.
  virtual Result<int> Publish(std::string_view topic, std::string_view payload, int qos,
                              bool retain) = 0;
  virtual Status Subscribe(std::string_view topic, int qos) = 0;
  virtual void Disconnect() = 0;
  // Drops the connection state (socket, queued and in-flight messages) so the next Connect()
  // starts clean; the caller resends from its own store.
  virtual void Reset() = 0;

  virtual int Socket() const = 0;  // -1 when not connected
  virtual bool WantWrite() const = 0;
  // Each returns 0, or an error code when the connection failed or was lost; LastError() then
  // says why (including the TLS library's reason, e.g. a certificate verify failure).
  virtual int LoopRead() = 0;
  virtual int LoopWrite() = 0;
  virtual int LoopMisc() = 0;
  virtual std::string LastError() const = 0;
  // The TLS failure of the last connection attempt, if it failed in the handshake.
  virtual TlsFailure LastTlsFailure() const { return TlsFailure::kNone; }
};

// libmosquitto. REQUIRES: mosquitto_lib_init() was called (in main).
Result<std::unique_ptr<MqttClient>> MakeMosquittoClient(const MqttClientOptions& options,
                                                        MqttCallbacks callbacks);

}  // namespace vg
