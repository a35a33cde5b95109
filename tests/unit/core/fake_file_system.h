// FakeFileSystem: an in-memory FileSystem for tests that must see what survives a failure.
//
// `files` holds what a crash would leave on disk, path -> content (and `modes` the mode of each).
// WriteFileAtomically goes through the same steps as PosixFileSystem (create the temporary
// file, write, fsync, rename, sync the directory); `FailAt(step)` makes the next `times`
// attempts fail at that step, with the clean-up the real one does (the temporary file removed,
// the old content untouched; a failed directory sync comes after the rename, as for real).
// `CrashAt(step)` stops there without any clean-up, as a process killed at that moment: the
// temporary file written so far stays behind.
//
// Not thread-safe; the test's thread only.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/core/file_system.h"

namespace vg {

class FakeFileSystem final : public FileSystem {
 public:
  enum class Step { kNone, kRead, kCreate, kWrite, kFsync, kRename, kSyncDir };

  void FailAt(Step step, int times = 1) {
    fail_at_ = step;
    fail_times_ = times;
    crash_ = false;
  }
  // The write stops at `step`, leaving what a crash there would; `partial_bytes` of the data
  // reach the temporary file when the crash is at kWrite.
  void CrashAt(Step step, std::size_t partial_bytes = 0) {
    fail_at_ = step;
    fail_times_ = 1;
    crash_ = true;
    partial_bytes_ = partial_bytes;
  }
  void Heal() { fail_at_ = Step::kNone; }

  Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) override {
    steps.push_back("read " + path);
    if (Failing(Step::kRead)) return Unavailable("cannot read " + path + ": injected fault");
    const auto it = files.find(path);
    if (it == files.end()) return NotFound(path + ": no such file");
    if (it->second.size() > max_bytes) {
      return ResourceExhausted(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
    return it->second;
  }

  Status WriteFileAtomically(const std::string& path, std::string_view data,
                             mode_t mode) override {
    const std::string tmp = path + ".tmp";
    steps.push_back("write " + path);
    if (Failing(Step::kCreate)) return Injected("cannot create", tmp);
    files[tmp].clear();
    modes[tmp] = mode;
    if (Failing(Step::kWrite)) {
      if (crash_) {
        files[tmp] = std::string(data.substr(0, std::min(partial_bytes_, data.size())));
        return Injected("crashed while writing", tmp);
      }
      return CleanUp(tmp, Injected("cannot write", tmp));
    }
    files[tmp] = std::string(data);
    if (Failing(Step::kFsync)) {
      // Without the fsync the data may never have reached the disk: a crash leaves nothing.
      if (crash_) return Injected("crashed before fsync of", tmp);
      return CleanUp(tmp, Injected("cannot write", tmp));
    }
    if (Failing(Step::kRename)) {
      if (crash_) return Injected("crashed before renaming", tmp);
      return CleanUp(tmp, Injected("cannot rename over", path));
    }
    files[path] = files[tmp];
    modes[path] = mode;
    files.erase(tmp);
    modes.erase(tmp);
    if (Failing(Step::kSyncDir)) return Injected("cannot sync directory of", path);
    ++writes;
    return Status::Ok();
  }

  std::map<std::string, std::string> files;
  std::map<std::string, mode_t> modes;
  std::vector<std::string> steps;  // "read <path>" / "write <path>", in order
  int writes = 0;                  // writes that completed every step

 private:
  bool Failing(Step step) {
    if (fail_at_ != step || fail_times_ == 0) return false;
    if (--fail_times_ == 0) fail_at_ = Step::kNone;
    return true;
  }
  static Status Injected(std::string_view what, const std::string& path) {
    return Unavailable(std::string(what) + " " + path + ": injected fault");
  }
  Status CleanUp(const std::string& tmp, Status s) {
    files.erase(tmp);
    modes.erase(tmp);
    return s;
  }

  Step fail_at_ = Step::kNone;
  int fail_times_ = 0;
  bool crash_ = false;
  std::size_t partial_bytes_ = 0;
};

}  // namespace vg
