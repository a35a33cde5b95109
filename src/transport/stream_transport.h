// StreamTransport<Stream>: the reconnecting byte-stream device behind the `serial` and `tcp`
// transports. A subclass opens the stream (a serial port, a TCP connection); this class reads it
// into the sink, sends the optional start-up and keep-alive bytes some devices need before they
// stream, notices silence (a converter that rebooted without closing the connection), and on any
// error closes, reports the link down once and opens again with capped exponential backoff,
// forever. Nothing here blocks the I/O thread.
//
// The stream is a template parameter so tests can drive the logic with any Asio stream.
// Thread-safety: I/O thread only.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "read_pause.h"
#include "vitalgate/core/option_table.h"
#include "vitalgate/transport/transport.h"

namespace vg {

// The options every stream transport (serial, tcp) has, as the config spells them. The
// defaults here are the ones documented; a transport may start from others (tcp's
// idle_reconnect_s) by building its table from another instance.
struct StreamConfig {
  std::int64_t reconnect_min_ms = 500;
  std::int64_t reconnect_max_ms = 30000;
  double idle_reconnect_s = 0;
  std::string init_hex{};
  std::string keepalive_hex{};
  std::int64_t keepalive_ms = 0;
};

// The keys of StreamConfig with their checks and help, for a transport's table to Include().
OptionTable<StreamConfig> StreamOptionTable(const StreamConfig& defaults);

// What StreamTransport runs with: StreamConfig checked and decoded.
struct StreamOptions {
  std::int64_t reconnect_min_ms = StreamConfig{}.reconnect_min_ms;
  std::int64_t reconnect_max_ms = StreamConfig{}.reconnect_max_ms;
  std::int64_t idle_reconnect_ms = 0;  // 0: never; else reopen after this long without bytes
  std::string init_bytes;              // sent once after every (re)connection
  std::string keepalive_bytes;         // sent every keepalive_ms while connected
  std::int64_t keepalive_ms = 0;
};

// Checks what the table cannot (backoff bounds, hex, a keep-alive without a period) and
// decodes. Errors name the key.
Result<StreamOptions> ToStreamOptions(const StreamConfig& config);
// ToStreamOptions of the stream keys of a validated option object.
Result<StreamOptions> ParseStreamOptions(const nlohmann::json& o);

template <typename Stream>
class StreamTransport : public Transport {
 public:
  StreamTransport(const TransportContext& ctx, StreamOptions options)
      : ctx_(ctx),
        options_(std::move(options)),
        retry_timer_(*ctx.io),
        idle_timer_(*ctx.io),
        keepalive_timer_(*ctx.io),
        pause_(*ctx.io),
        backoff_(options_.reconnect_min_ms, options_.reconnect_max_ms) {}

  ~StreamTransport() override { *alive_ = false; }

  void Start() override {
    stopped_ = false;
    Open();
  }

  void Stop() override {
    stopped_ = true;
    retry_timer_.cancel();
    idle_timer_.cancel();
    keepalive_timer_.cancel();
    pause_.Cancel();
    CloseStream();
  }

 protected:
  // Subclasses: start opening; call Opened() or Failed(why) when done (on the I/O thread).
  virtual void Open() = 0;
  virtual void CloseStream() = 0;
  virtual Stream* stream() = 0;
  virtual std::string Describe() const = 0;

  void Opened() {
    if (stopped_) return;
    connected_ = true;
    reported_down_ = false;
    backoff_.Reset();
    spdlog::info("device {}: connected to {}", ctx_.device_id, Describe());
    ctx_.sink->OnLink(true, "");
    if (!options_.init_bytes.empty()) Send(options_.init_bytes);
    ArmKeepalive();
    last_bytes_ = std::chrono::steady_clock::now();
    ArmIdle();
    Read();
  }

  // The stream could not be opened or broke: report once, then retry with backoff.
  void Failed(const std::string& why) {
    if (stopped_) return;
    const bool was_connected = connected_;
    connected_ = false;
    idle_timer_.cancel();
    keepalive_timer_.cancel();
    pause_.Cancel();
    CloseStream();
    // Reported once per outage: the engine times the outage; retries are not news.
    if (was_connected || !reported_down_) {
      ctx_.sink->OnLink(false, why);
      reported_down_ = true;
      spdlog::warn("device {}: {}: {}; retrying", ctx_.device_id, Describe(), why);
    }
    const std::int64_t delay = backoff_.NextMs();
    retry_delay_ms_ = delay;
    retry_timer_.expires_after(std::chrono::milliseconds(delay));
    std::weak_ptr<bool> alive = alive_;
    retry_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
      if (!ec && !alive.expired() && !stopped_) Open();
    });
  }

  const TransportContext& ctx() const { return ctx_; }
  // The delay before the reopen that the last Failed() scheduled.
  std::int64_t retry_delay_ms() const { return retry_delay_ms_; }
  std::weak_ptr<bool> alive() const { return alive_; }
  bool stopped() const { return stopped_; }

 private:
  void Read() {
    std::weak_ptr<bool> alive = alive_;
    if (pause_.Needed(*ctx_.sink, alive, [this] { Read(); })) {
      // Silence while we do not read is ours, not the device's: it must not look idle.
      last_bytes_ = std::chrono::steady_clock::now();
      return;
    }
    stream()->async_read_some(
        boost::asio::buffer(buffer_),
        [this, alive](const boost::system::error_code& ec, std::size_t n) {
          if (alive.expired() || stopped_ || !connected_) return;
          if (n > 0) {
            last_bytes_ = std::chrono::steady_clock::now();
            ctx_.sink->OnBytes(std::span<const std::uint8_t>(buffer_.data(), n));
          }
          if (ec) {
            Failed(ec == boost::asio::error::eof ? "closed by the device" : ec.message());
            return;
          }
          Read();
        });
  }

  void Send(const std::string& bytes) {
    auto data = std::make_shared<std::string>(bytes);
    std::weak_ptr<bool> alive = alive_;
    boost::asio::async_write(*stream(), boost::asio::buffer(*data),
                             [this, alive, data](const boost::system::error_code& ec, std::size_t) {
                               if (ec && !alive.expired() && !stopped_ && connected_) {
                                 Failed("write: " + ec.message());
                               }
                             });
  }

  void ArmKeepalive() {
    if (options_.keepalive_bytes.empty() || options_.keepalive_ms <= 0) return;
    keepalive_timer_.expires_after(std::chrono::milliseconds(options_.keepalive_ms));
    std::weak_ptr<bool> alive = alive_;
    keepalive_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
      if (ec || alive.expired() || stopped_ || !connected_) return;
      Send(options_.keepalive_bytes);
      ArmKeepalive();
    });
  }

  void ArmIdle() {
    if (options_.idle_reconnect_ms <= 0) return;
    idle_timer_.expires_after(std::chrono::milliseconds(options_.idle_reconnect_ms));
    std::weak_ptr<bool> alive = alive_;
    idle_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
      if (ec || alive.expired() || stopped_ || !connected_) return;
      const auto silent = std::chrono::steady_clock::now() - last_bytes_;
      if (silent >= std::chrono::milliseconds(options_.idle_reconnect_ms)) {
        Failed("no bytes for " + std::to_string(options_.idle_reconnect_ms / 1000) + " s");
        return;
      }
      ArmIdle();
    });
  }

  TransportContext ctx_;
  StreamOptions options_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer keepalive_timer_;
  ReadPause pause_;
  Backoff backoff_;
  bool stopped_ = true;
  bool connected_ = false;
  bool reported_down_ = false;
  std::int64_t retry_delay_ms_ = 0;
  std::chrono::steady_clock::time_point last_bytes_{};
  std::array<std::uint8_t, 4096> buffer_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
