// Daemon: `vitalgate run`. Wires the pipeline and owns its threads:
//   I/O thread (this one): Boost.Asio reactor with every transport, signals, HTTP, watchdog;
//   engine thread: EngineRunner;  store thread: OutboxWriter;  forwarder thread: Forwarder.
// Start-up: umask 077, open the outbox, start engine, store and forwarder, then transports, then
// READY=1. SIGTERM/SIGINT: stop transports, let the engine and store drain and commit, publish
// the offline status if the broker is reachable, exit 0. SIGHUP: reload rules and patients.
#pragma once

#include <string>

#include "vitalgate/app/loader.h"

namespace vg {

// Returns the process exit code.
int RunDaemon(const std::string& config_path);

}  // namespace vg
