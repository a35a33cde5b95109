/* A plugin built against another ABI: its table says version 99. The gateway must refuse it
 * and name both versions. Written in C to show that vitalgate/plugin.h is plain C. */
#include <stddef.h>

#include "vitalgate/plugin.h"

static void* Create(const char* config_json, const vitalgate_host* host) {
  (void)config_json;
  (void)host;
  return NULL;
}
static int Start(void* instance) {
  (void)instance;
  return 0;
}
static void Stop(void* instance) { (void)instance; }
static void Destroy(void* instance) { (void)instance; }

static const vitalgate_plugin kPlugin = {99u, "bad-abi", Create, Start, Stop, Destroy};

const vitalgate_plugin* vitalgate_plugin_v1(void) { return &kPlugin; }
