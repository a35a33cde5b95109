#include "vitalgate/core/file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vitalgate/core/unique_fd.h"

namespace vg {
namespace {

Status Failure(std::string_view what, const std::string& path) {
  return Unavailable(std::string(what) + " " + path + ": " + std::strerror(errno));
}

// write(2) until everything is out or an error that is not EINTR.
bool WriteAll(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string DirectoryOf(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Result<std::string> PosixFileSystem::ReadFile(const std::string& path, std::size_t max_bytes) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return Failure("cannot open", path);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Failure("cannot read", path);
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      return ResourceExhausted(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
}

Status PosixFileSystem::WriteFileAtomically(const std::string& path, std::string_view data,
                                            mode_t mode) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return Failure("cannot create", tmp);
  // O_CREAT's mode applies only to a new file (and passes through the umask); a stale
  // temporary file keeps its own.
  if (::fchmod(fd.get(), mode) != 0 || !WriteAll(fd.get(), data) || ::fsync(fd.get()) != 0 ||
      fd.Close() != 0) {
    const Status s = Failure("cannot write", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const Status s = Failure("cannot rename over", path);
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename is durable only once the directory entry is.
  const std::string dir = DirectoryOf(path);
  const UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return Failure("cannot open directory", dir);
  if (::fsync(dfd.get()) != 0) return Failure("cannot sync directory", dir);
  return Status::Ok();
}

FileSystem& DefaultFileSystem() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace vg
