/* vitalgate transport plugins: the C ABI, version 1.
 *
 * A plugin is a shared library that brings device data into the gateway when no built-in
 * transport fits (a vendor SDK, a proprietary radio, a USB HID device). The gateway loads it at
 * start with dlopen() for each device configured as {"type": "plugin", "path": "...",
 * "config": {...}} and hands what it emits to the device's codec, exactly like the bytes of a
 * serial port or the values of a BLE characteristic. See docs/ble.md ("Plugin transports").
 *
 * The library exports ONE symbol, vitalgate_plugin_v1, a function returning a pointer to a
 * static vitalgate_plugin table whose abi_version is VITALGATE_PLUGIN_ABI_VERSION. The gateway
 * refuses a library without that symbol or with another abi_version, with a message naming both
 * versions. A future incompatible ABI gets a new symbol (vitalgate_plugin_v2) and a new version
 * number, so one library can serve several gateway versions.
 *
 * Threads and lifetime (per instance, i.e. per configured device):
 *  - create, start, stop and destroy are called on the gateway's I/O thread, in that order
 *    (start and stop at most once each; stop may be skipped if start failed). They must not
 *    block for long: the I/O thread serves every device. start() typically starts a thread.
 *  - The host functions (emit_bytes, emit_characteristic, link, log) may be called from any
 *    thread, but from ONE thread at a time per instance: calls must not overlap. Handing the
 *    role from one thread to another needs a happens-before edge (a thread start or join, a
 *    mutex). They never block for long and never call back into the plugin: data goes through
 *    a bounded lock-free queue to the I/O thread; when it is full the chunk is dropped, counted
 *    and VITALGATE_PLUGIN_DROPPED is returned.
 *  - After stop() returns, the plugin must not call the host any more (join its threads in
 *    stop). After destroy() the instance pointer is dead; the library may be unloaded.
 *  - `host` and everything it points to stay valid from create() until destroy() returns.
 *  - No C++ exception may leave any of these functions.
 *
 * Data:
 *  - emit_bytes: a byte stream (like a serial port), in order, split anywhere; for stream
 *    codecs such as jsonl, masimo, nonin. Any length; chunks larger than
 *    VITALGATE_PLUGIN_MAX_CHUNK are split by the host.
 *  - emit_characteristic: one BLE-style characteristic value (16-bit UUID, at most
 *    VITALGATE_PLUGIN_MAX_CHUNK bytes) for the gatt codec.
 *  - link: the device link came up (up != 0) or went down; `reason` (may be NULL) says why, in
 *    a few words, without patient data. The gateway raises its `disconnected` technical alarm
 *    when the link stays down.
 *  - log: a line for the gateway's log (level: VITALGATE_LOG_*). Never log patient values.
 */
#ifndef VITALGATE_PLUGIN_H_
#define VITALGATE_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VITALGATE_PLUGIN_ABI_VERSION 1u
#define VITALGATE_PLUGIN_ENTRY_SYMBOL "vitalgate_plugin_v1"
/* The largest value emit_characteristic accepts (the ATT maximum attribute length). */
#define VITALGATE_PLUGIN_MAX_CHUNK 512u

/* Results of the emit functions. */
#define VITALGATE_PLUGIN_OK 0
#define VITALGATE_PLUGIN_DROPPED 1 /* queue full: nothing (or, for bytes, not all) was queued */
#define VITALGATE_PLUGIN_INVALID 2 /* bad arguments (NULL data with a length, value too long) */

/* Levels of vitalgate_host.log. */
#define VITALGATE_LOG_DEBUG 0
#define VITALGATE_LOG_INFO 1
#define VITALGATE_LOG_WARNING 2
#define VITALGATE_LOG_ERROR 3

/* What the gateway offers one instance. `ctx` is the first argument of every function. */
typedef struct vitalgate_host {
  uint32_t abi_version; /* VITALGATE_PLUGIN_ABI_VERSION of the gateway */
  void* ctx;
  int (*emit_bytes)(void* ctx, const uint8_t* data, size_t len);
  int (*emit_characteristic)(void* ctx, uint16_t uuid16, const uint8_t* data, size_t len);
  void (*link)(void* ctx, int up, const char* reason);
  void (*log)(void* ctx, int level, const char* message);
} vitalgate_host;

/* What the plugin offers. All four functions are required. */
typedef struct vitalgate_plugin {
  uint32_t abi_version; /* must be VITALGATE_PLUGIN_ABI_VERSION */
  const char* name;     /* short, for logs: "example" */
  /* Parses `config_json` (the device's "config" object as JSON text, "{}" when absent) and
   * returns a new instance, or NULL after explaining why through host->log. Must not call
   * emit_* or link yet. */
  void* (*create)(const char* config_json, const vitalgate_host* host);
  /* Starts delivering data; 0 on success. On failure the gateway logs, reports the link down
   * and calls destroy() at shutdown (no retry: a plugin that can fail transiently should retry
   * on its own and report the link instead). */
  int (*start)(void* instance);
  /* Stops delivering: when it returns, no host function is called any more. */
  void (*stop)(void* instance);
  void (*destroy)(void* instance);
} vitalgate_plugin;

/* Keeps the entry point visible in libraries built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define VITALGATE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define VITALGATE_PLUGIN_EXPORT
#endif

/* The entry point every plugin defines (declared here so its type is checked). */
VITALGATE_PLUGIN_EXPORT const vitalgate_plugin* vitalgate_plugin_v1(void);
typedef const vitalgate_plugin* (*vitalgate_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VITALGATE_PLUGIN_H_ */
