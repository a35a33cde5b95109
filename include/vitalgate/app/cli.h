// The command line of docs/cli.md: run, check, decode, replay, decrypt, status, passwd, --version, --help.
// Exit codes: 0 success, 2 the input (config, arguments, device bytes) was wrong, 1 the
// environment failed (disk, network).
#pragma once

#include <string>
#include <vector>

#include "vitalgate/core/status.h"

namespace vg {

int Main(const std::vector<std::string>& args);

// Prints "vitalgate: <message>" to stderr and returns the status's exit code.
int PrintError(const Status& status);

// quiet: one summary line (and warnings on stderr) instead of the summary and effective config.
int CommandCheck(const std::string& config_path, bool quiet = false);
int CommandDecode(const std::vector<std::string>& args);  // args after "decode"
int CommandReplay(const std::vector<std::string>& args);
int CommandDecrypt(const std::vector<std::string>& args);
// `seal --key FILE --topic TOPIC`: the envelope of stdin for the topic (a dashboard's downlink).
int CommandSeal(const std::vector<std::string>& args);
// `audit verify --config FILE`: checks the audit trail's hash chain; 0 intact, 1 broken.
int CommandAudit(const std::vector<std::string>& args);
int CommandStatus(const std::vector<std::string>& args);  // args after "status"
int CommandPasswd(const std::vector<std::string>& args);  // args after "passwd"

}  // namespace vg
