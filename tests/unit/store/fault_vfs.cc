#include "unit/store/fault_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace vg::testing {
namespace {

std::string Durable(const std::string& path) { return path + ".durable"; }

// Copies `from` to `to` byte for byte (both regular files).
void CopyFile(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in >= 0 && out >= 0) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(in, buf, sizeof buf)) > 0) {
      if (::write(out, buf, static_cast<std::size_t>(n)) != n) break;
    }
  }
  if (in >= 0) ::close(in);
  if (out >= 0) ::close(out);
}

struct FaultFile {
  sqlite3_file base;  // must be first
  sqlite3_file* real;
  std::string path;
  bool track;
  // Writes since the last sync, in order; a truncation to n is recorded as offset -1 - n.
  std::vector<std::pair<sqlite3_int64, std::string>> pending;
};

sqlite3_vfs* g_real = nullptr;

FaultFile* F(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }

int Close(sqlite3_file* f) {
  FaultFile* ff = F(f);
  const int rc = ff->real->pMethods != nullptr ? ff->real->pMethods->xClose(ff->real) : SQLITE_OK;
  sqlite3_free(ff->real);
  ff->pending.~vector();
  ff->path.~basic_string();
  return rc;
}
int Read(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  return F(f)->real->pMethods->xRead(F(f)->real, buf, amt, off);
}
int Write(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  FaultFile* ff = F(f);
  const int rc = ff->real->pMethods->xWrite(ff->real, buf, amt, off);
  if (rc == SQLITE_OK && ff->track) {
    ff->pending.emplace_back(off, std::string(static_cast<const char*>(buf), static_cast<std::size_t>(amt)));
  }
  return rc;
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  FaultFile* ff = F(f);
  const int rc = ff->real->pMethods->xTruncate(ff->real, size);
  if (rc == SQLITE_OK && ff->track) {
    ff->pending.emplace_back(-1 - size, std::string());
  }
  return rc;
}
int Sync(sqlite3_file* f, int flags) {
  FaultFile* ff = F(f);
  const int rc = ff->real->pMethods->xSync(ff->real, flags);
  if (rc == SQLITE_OK && ff->track) {
    // What is synced is durable: apply the pending writes to the durable image in order.
    const int fd = ::open(Durable(ff->path).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      for (const auto& [off, data] : ff->pending) {
        if (off < 0) {
          if (::ftruncate(fd, -1 - off) != 0) break;
        } else if (::pwrite(fd, data.data(), data.size(), off) != static_cast<ssize_t>(data.size())) {
          break;
        }
      }
      ::close(fd);
    }
    ff->pending.clear();
  }
  return rc;
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) { return F(f)->real->pMethods->xFileSize(F(f)->real, size); }
int Lock(sqlite3_file* f, int l) { return F(f)->real->pMethods->xLock(F(f)->real, l); }
int Unlock(sqlite3_file* f, int l) { return F(f)->real->pMethods->xUnlock(F(f)->real, l); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return F(f)->real->pMethods->xCheckReservedLock(F(f)->real, out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return F(f)->real->pMethods->xFileControl(F(f)->real, op, arg);
}
int SectorSize(sqlite3_file* f) { return F(f)->real->pMethods->xSectorSize(F(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return F(f)->real->pMethods->xDeviceCharacteristics(F(f)->real);
}
int ShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** p) {
  return F(f)->real->pMethods->xShmMap(F(f)->real, pg, sz, extend, p);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return F(f)->real->pMethods->xShmLock(F(f)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { F(f)->real->pMethods->xShmBarrier(F(f)->real); }
int ShmUnmap(sqlite3_file* f, int del) { return F(f)->real->pMethods->xShmUnmap(F(f)->real, del); }
int Fetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** pp) {
  *pp = nullptr;  // no memory-mapped reads: every read goes through xRead
  (void)f;
  (void)off;
  (void)amt;
  return SQLITE_OK;
}
int Unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

const sqlite3_io_methods kMethods = {
    3,        Close,     Read,     Write,    Truncate,          Sync,      FileSize,
    Lock,     Unlock,    CheckReservedLock, FileControl, SectorSize, DeviceCharacteristics,
    ShmMap,   ShmLock,   ShmBarrier, ShmUnmap, Fetch,           Unfetch,
};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  FaultFile* ff = F(f);
  ff->base.pMethods = nullptr;
  ff->real = static_cast<sqlite3_file*>(sqlite3_malloc(g_real->szOsFile));
  if (ff->real == nullptr) return SQLITE_NOMEM;
  std::memset(ff->real, 0, static_cast<std::size_t>(g_real->szOsFile));
  const int rc = g_real->xOpen(g_real, name, ff->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    sqlite3_free(ff->real);
    return rc;
  }
  new (&ff->path) std::string(name != nullptr ? name : "");
  new (&ff->pending) std::vector<std::pair<sqlite3_int64, std::string>>();
  ff->track = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0 && name != nullptr;
  if (ff->track) {
    // What is on disk when a file is opened survived any earlier "power loss": it is durable.
    struct stat st {};
    if (::stat(Durable(ff->path).c_str(), &st) != 0) CopyFile(ff->path, Durable(ff->path));
  }
  ff->base.pMethods = &kMethods;
  return SQLITE_OK;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  std::remove(Durable(name).c_str());
  return g_real->xDelete(g_real, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* f) { return g_real->xDlOpen(g_real, f); }
void DlError(sqlite3_vfs*, int n, char* msg) { g_real->xDlError(g_real, n, msg); }
void (*DlSym(sqlite3_vfs*, void* h, const char* s))(void) { return g_real->xDlSym(g_real, h, s); }
void DlClose(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int Randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int Sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int CurrentTime(sqlite3_vfs*, double* t) { return g_real->xCurrentTime(g_real, t); }
int GetLastError(sqlite3_vfs*, int n, char* s) { return g_real->xGetLastError(g_real, n, s); }
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) { return g_real->xCurrentTimeInt64(g_real, t); }

sqlite3_vfs g_vfs;

}  // namespace

void RegisterFaultVfs() {
  if (g_real != nullptr) return;
  g_real = sqlite3_vfs_find(nullptr);
  g_vfs = sqlite3_vfs{};
  g_vfs.iVersion = 2;
  g_vfs.szOsFile = static_cast<int>(sizeof(FaultFile));
  g_vfs.mxPathname = g_real->mxPathname;
  g_vfs.zName = kFaultVfsName;
  g_vfs.xOpen = Open;
  g_vfs.xDelete = Delete;
  g_vfs.xAccess = Access;
  g_vfs.xFullPathname = FullPathname;
  g_vfs.xDlOpen = DlOpen;
  g_vfs.xDlError = DlError;
  g_vfs.xDlSym = DlSym;
  g_vfs.xDlClose = DlClose;
  g_vfs.xRandomness = Randomness;
  g_vfs.xSleep = Sleep;
  g_vfs.xCurrentTime = CurrentTime;
  g_vfs.xGetLastError = GetLastError;
  g_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0);
}

void SimulatePowerLoss(const std::string& db_path) {
  for (const std::string& f : {db_path, db_path + "-wal"}) {
    struct stat st {};
    if (::stat(Durable(f).c_str(), &st) == 0) {
      std::rename(Durable(f).c_str(), f.c_str());
    } else {
      std::remove(f.c_str());
    }
  }
  std::remove((db_path + "-shm").c_str());
}

}  // namespace vg::testing
