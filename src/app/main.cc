#include <mosquitto.h>
#include <signal.h>

#include <string>
#include <vector>

#include "vitalgate/app/cli.h"

int main(int argc, char** argv) {
  // A broken pipe (a bridge that went away, a closed socket) is an error to handle, not a reason
  // to die.
  ::signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  std::vector<std::string> args(argv, argv + argc);
  const int rc = vg::Main(args);
  mosquitto_lib_cleanup();
  return rc;
}
