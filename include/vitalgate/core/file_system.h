// FileSystem: the seam between code that keeps small files (state files that must survive a
// restart) and the operating system, so tests can make any step fail and prove what survives.
// LevelDB's Env in miniature: only the two operations such files need.
//
// PosixFileSystem is the real one; tests use a fake (tests/unit/core/fake_file_system.h) that
// keeps files in memory and fails whichever step it is told to.
//
// Thread-safety: PosixFileSystem is stateless and thread-safe; a fake need not be.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The whole content of a small file. NotFound when it does not exist; ResourceExhausted when
  // it is larger than `max_bytes` (a file that size is not the one the caller wrote);
  // Unavailable for any other failure, naming the path and the error.
  virtual Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) = 0;

  // Replaces the content of `path` with `data` so that, whatever happens (an error, a crash,
  // a power cut), the file afterwards holds either its old content or all of `data`, never a
  // mix: a temporary file `<path>.tmp` in the same directory is written, fsync'ed and renamed
  // over `path`, then the directory is fsync'ed. The file gets `mode` (also when a stale
  // temporary file existed). Unavailable on failure, naming the step and the file; the old
  // content is then untouched and the temporary file removed.
  virtual Status WriteFileAtomically(const std::string& path, std::string_view data,
                                     mode_t mode) = 0;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) override;
  Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode) override;
};

// The process's real file system (a PosixFileSystem).
FileSystem& DefaultFileSystem();

}  // namespace vg
