// FaultInjectionVfs: an SQLite VFS, in the spirit of LevelDB's fault_injection_test, that keeps
// for every file it writes a "durable image": the bytes that were on the file at its last
// xSync. SimulatePowerLoss() replaces each file by its durable image, which is exactly what a
// machine keeps after a power cut: everything fsync()ed, nothing else.
//
// Register once per process; then open databases with vfs = kFaultVfsName. Single-threaded use.
#pragma once

#include <string>

namespace vg::testing {

inline constexpr const char* kFaultVfsName = "vg-fault";

void RegisterFaultVfs();

// Replaces `path`, `path-wal` by their durable images (removing them if never synced) and
// removes `path-shm` (shared memory never survives a power cut).
void SimulatePowerLoss(const std::string& db_path);

}  // namespace vg::testing
