#include "vitalgate/app/cli.h"

#include "vitalgate/forward/destination.h"

#include <algorithm>
#include <cstdio>

#include "vitalgate/app/daemon.h"
#include "vitalgate/codec/codec.h"
#include "vitalgate/config/config.h"
#include "vitalgate/engine/rules.h"
#include "vitalgate/transport/transport.h"
#include "vitalgate/core/log.h"

namespace vg {
namespace {

const char* kUsage =
    "vitalgate " VITALGATE_VERSION " - remote patient monitoring gateway\n"
    "\n"
    "usage:\n"
    "  vitalgate run --config FILE          run the gateway in the foreground (systemd Type=notify)\n"
    "  vitalgate check --config FILE [--quiet]\n"
    "                                       validate the config and the files it names; --quiet\n"
    "                                       prints one summary line instead of the whole config\n"
    "  vitalgate decode CODEC [OPTS] INPUT  decode one frame or line, print readings as JSON lines\n"
    "  vitalgate replay --config FILE INPUT.jsonl [--summary]\n"
    "                                       run the rules over recorded readings, print alerts\n"
    "  vitalgate decrypt --key FILE --topic TOPIC\n"
    "                                       decrypt a payload envelope read from stdin\n"
    "  vitalgate status [--url URL] [--json] [--ca FILE] [--user NAME --password-file FILE]\n"
    "                                       the status of a running gateway (its /api/status)\n"
    "  vitalgate passwd --file FILE [--scheme yescrypt|bcrypt] USER\n"
    "                                       set a password in http.users_file (read from stdin)\n"
    "  vitalgate help config                every config key, its type and default\n"
    "  vitalgate --version | --help\n"
    "\n"
    "exit status: 0 success, 2 invalid input, 1 environment failure.\n"
    "documentation: /usr/share/doc/vitalgate and docs/ in the source tree.\n";

int UsageError(const std::string& message) {
  std::fprintf(stderr, "vitalgate: %s\n(run 'vitalgate --help' for usage)\n", message.c_str());
  return 2;
}

// Extracts "--config FILE" (or --config=FILE) from args.
bool TakeOption(std::vector<std::string>& args, const std::string& name, std::string& value) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name && i + 1 < args.size()) {
      value = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      return true;
    }
    if (args[i].rfind(name + "=", 0) == 0) {
      value = args[i].substr(name.size() + 1);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return true;
    }
  }
  return false;
}

// The option reference of docs/config.md, generated from the same tables that validate configs.
std::string ConfigReference() {
  std::string out;
  auto section = [&](const std::string& title, std::span<const OptionSpec> specs) {
    out += "### " + title + "\n\n" + FormatOptionTable(specs) + "\n";
  };
  section("`gateway`", config::GatewaySpecs());
  section("`storage`", config::StorageSpecs());
  section("`mqtt`", config::MqttSpecs());
  section("`mqtt.tls`", config::TlsSpecs());
  section("`mqtt.payload_encryption`", config::EncryptionSpecs());
  section("`http`", config::HttpSpecs());
  section("`http.tls`", config::HttpTlsSpecs());
  section("`patients[]`", config::PatientSpecs());
  section("`devices[]`", config::DeviceSpecs());
  section("`devices[].clock`", config::DeviceClockSpecs());
  section("`destinations[]` (every type)", config::DestinationSpecs());
  for (const DestinationDescriptor* d : AllDestinations()) {
    section("destination `" + std::string(d->type) + "`: " + std::string(d->summary), d->options);
  }
  for (const TransportDescriptor& t : AllTransports()) {
    std::string title = "transport `" + std::string(t.name) + "`: " + std::string(t.summary);
    if (!t.default_codec.empty()) title += " (default codec `" + std::string(t.default_codec) + "`)";
    section(title, t.options);
  }
  for (const CodecDescriptor& c : AllCodecs()) {
    section("codec `" + std::string(c.name) + "`: " + std::string(c.summary), c.options);
  }
  out += "### `rules`: built-in defaults\n\n```json\n" + DefaultRulesDocument().dump(2) + "\n```\n";
  return out;
}

}  // namespace

int PrintError(const Status& status) {
  std::fprintf(stderr, "vitalgate: %s\n", status.message().c_str());
  return status.ExitCode();
}

int Main(const std::vector<std::string>& argv) {
  std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  if (args.empty()) return UsageError("missing command");
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--version" || cmd == "version") {
    std::printf("vitalgate %s\n", VITALGATE_VERSION);
    return 0;
  }
  if (cmd == "help" && !args.empty() && args[0] == "config") {
    std::fputs(ConfigReference().c_str(), stdout);
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "run" || cmd == "check") {
    std::string config;
    if (!TakeOption(args, "--config", config)) return UsageError(cmd + ": --config FILE is required");
    bool quiet = false;
    if (cmd == "check") {
      const auto flag = std::find(args.begin(), args.end(), "--quiet");
      quiet = flag != args.end();
      if (quiet) args.erase(flag);
    }
    if (!args.empty()) return UsageError(cmd + ": unexpected argument \"" + args[0] + "\"");
    InitLogging(cmd == "run" ? "info" : "warn");
    return cmd == "run" ? RunDaemon(config) : CommandCheck(config, quiet);
  }
  if (cmd == "decode") {
    InitLogging("warn");
    return CommandDecode(args);
  }
  if (cmd == "replay") {
    InitLogging("warn");
    return CommandReplay(args);
  }
  if (cmd == "status") {
    InitLogging("warn");
    return CommandStatus(args);
  }
  if (cmd == "passwd") {
    InitLogging("warn");
    return CommandPasswd(args);
  }
  if (cmd == "decrypt") {
    InitLogging("warn");
    return CommandDecrypt(args);
  }
  if (cmd == "seal") {
    InitLogging("warn");
    return CommandSeal(args);
  }
  if (cmd == "audit") {
    InitLogging("warn");
    return CommandAudit(args);
  }
  return UsageError("unknown command \"" + cmd + "\"");
}

}  // namespace vg
