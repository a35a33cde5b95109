// PosixFileSystem against a real temporary directory: results, modes, and no descriptor left
// open on any path.
#include "vitalgate/core/file_system.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace vg {
namespace {

std::size_t OpenDescriptors() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

class PosixFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "vg-fs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  PosixFileSystem fs_;
  std::string dir_;
};

TEST_F(PosixFileSystemTest, WritesAtomicallyWithTheModeAndReadsBack) {
  const std::size_t fds = OpenDescriptors();
  const std::string path = dir_ + "/state";
  ASSERT_TRUE(fs_.WriteFileAtomically(path, "first", 0600).ok());
  ASSERT_TRUE(fs_.WriteFileAtomically(path, "second", 0600).ok());
  auto text = fs_.ReadFile(path, 100);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, "second");
  struct stat sb {};
  ASSERT_EQ(::stat(path.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(OpenDescriptors(), fds);
}

TEST_F(PosixFileSystemTest, ReadErrorsSayWhatWentWrong) {
  const std::size_t fds = OpenDescriptors();
  EXPECT_EQ(fs_.ReadFile(dir_ + "/missing", 100).status().code(), StatusCode::kNotFound);
  std::ofstream(dir_ + "/big") << std::string(200, 'x');
  auto big = fs_.ReadFile(dir_ + "/big", 100);
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("larger than 100 bytes"), std::string::npos);
  // A directory opens but cannot be read.
  EXPECT_EQ(fs_.ReadFile(dir_, 100).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(OpenDescriptors(), fds);
}

TEST_F(PosixFileSystemTest, FailedWritesLeaveTheOldContentAndNoTemporaryFile) {
  const std::size_t fds = OpenDescriptors();
  const Status missing = fs_.WriteFileAtomically(dir_ + "/no/such/dir/state", "x", 0600);
  EXPECT_EQ(missing.code(), StatusCode::kUnavailable);
  EXPECT_NE(missing.message().find("cannot create " + dir_ + "/no/such/dir/state.tmp"),
            std::string::npos);
  // The target is a non-empty directory: the rename fails after the temporary file is written.
  const std::string target = dir_ + "/occupied";
  std::filesystem::create_directory(target);
  std::ofstream(target + "/keep") << "old";
  const Status rename = fs_.WriteFileAtomically(target, "new", 0600);
  EXPECT_EQ(rename.code(), StatusCode::kUnavailable);
  EXPECT_NE(rename.message().find("cannot rename over " + target), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));
  EXPECT_TRUE(std::filesystem::exists(target + "/keep"));
  EXPECT_EQ(OpenDescriptors(), fds);
}

}  // namespace
}  // namespace vg
