// The outbox: committed rows survive reopening; only acknowledged rows are removed.
#include "vitalgate/store/outbox.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace vg {
namespace {

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vg_outbox_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
  }
  void TearDown() override { Remove(); }
  void Remove() {
    for (const char* s : {"", "-wal", "-shm"}) std::remove((path_ + s).c_str());
  }
  std::unique_ptr<OutboxStore> Open(OpenReport* report = nullptr) {
    auto s = OutboxStore::Open(StoreOptions{path_, 64ull << 20, true, ""}, report);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static OutboxRow Row(std::uint64_t seq, const std::string& patient) {
    return OutboxRow{seq, patient, "{\"id\":" + std::to_string(seq) + "}", 1000 + static_cast<std::int64_t>(seq)};
  }
  std::vector<OutboxRow> ReadAll(bool alerts) {
    auto reader = OutboxReader::Open(path_);
    EXPECT_TRUE(reader.ok());
    std::vector<OutboxRow> rows;
    const Status s = alerts ? (*reader)->ReadAlerts(0, 1000, rows) : (*reader)->ReadReadings(0, 1000, rows);
    EXPECT_TRUE(s.ok()) << s.message();
    return rows;
  }
  std::string path_;
};

TEST_F(OutboxTest, CommitThenReadInOrder) {
  auto store = Open();
  WriteBatch b;
  for (std::uint64_t i = 1; i <= 5; ++i) b.readings.push_back(Row(i, i % 2 ? "p-1" : "p-2"));
  b.alerts.push_back(Row(100, "p-1"));
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(store->reading_rows(), 5u);
  EXPECT_EQ(store->alert_rows(), 1u);
  auto rows = ReadAll(false);
  ASSERT_EQ(rows.size(), 5u);
  for (std::uint64_t i = 0; i < 5; ++i) EXPECT_EQ(rows[i].seq, i + 1);
  EXPECT_EQ(rows[1].patient, "p-2");
  EXPECT_EQ(rows[4].body, "{\"id\":5}");
  EXPECT_EQ(rows[0].rx_ms, 1001);
  EXPECT_EQ(ReadAll(true).size(), 1u);
}

TEST_F(OutboxTest, AcknowledgedRowsAreDeletedOthersKept) {
  auto store = Open();
  WriteBatch b;
  for (std::uint64_t i = 1; i <= 10; ++i) b.readings.push_back(Row(i, "p"));
  ASSERT_TRUE(store->Commit(b).ok());
  WriteBatch ack;
  ack.acked_readings = {1, 2, 3, 7};
  ASSERT_TRUE(store->Commit(ack).ok());
  auto rows = ReadAll(false);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].seq, 4u);
  EXPECT_EQ(store->reading_rows(), 6u);
  auto reader = OutboxReader::Open(path_);
  std::vector<OutboxRow> after;
  ASSERT_TRUE((*reader)->ReadReadings(5, 2, after).ok());
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].seq, 6u);
  EXPECT_EQ(after[1].seq, 8u);
}

TEST_F(OutboxTest, UnacknowledgedRowsSurviveReopenAndGenerationGrows) {
  std::uint32_t gen1 = 0;
  std::string instance;
  {
    auto store = Open();
    gen1 = store->generation();
    instance = store->instance();
    WriteBatch b;
    for (std::uint64_t i = 1; i <= 3; ++i) b.readings.push_back(Row(i, "p"));
    b.alerts.push_back(Row(4, "p"));
    ASSERT_TRUE(store->Commit(b).ok());
    WriteBatch ack;
    ack.acked_readings = {1};
    ASSERT_TRUE(store->Commit(ack).ok());
  }
  auto store = Open();
  EXPECT_EQ(store->generation(), gen1 + 1);
  EXPECT_EQ(store->instance(), instance);
  EXPECT_EQ(store->reading_rows(), 2u);
  EXPECT_EQ(store->alert_rows(), 1u);
  auto rows = ReadAll(false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].seq, 2u);
}

TEST_F(OutboxTest, FilesArePrivate) {
  auto store = Open();
  WriteBatch b;
  b.readings.push_back(Row(1, "p"));
  ASSERT_TRUE(store->Commit(b).ok());
  for (const char* s : {"", "-wal"}) {
    struct stat st {};
    ASSERT_EQ(::stat((path_ + s).c_str(), &st), 0) << s;
    EXPECT_EQ(st.st_mode & 077, 0u) << s << " mode " << std::oct << (st.st_mode & 0777);
  }
}

TEST_F(OutboxTest, DamagedFileIsMovedAsideAndAFreshOneCreated) {
  std::ofstream(path_) << std::string(8192, 'g');  // not an SQLite database
  OpenReport report;
  auto store = Open(&report);
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(report.moved_aside.empty());
  EXPECT_EQ(::access(report.moved_aside.c_str(), F_OK), 0);
  EXPECT_EQ(store->reading_rows(), 0u);
  WriteBatch b;
  b.readings.push_back(Row(1, "p"));
  EXPECT_TRUE(store->Commit(b).ok());
  std::remove(report.moved_aside.c_str());
}

TEST_F(OutboxTest, DuplicateInsertIsIgnoredNotAnError) {
  auto store = Open();
  WriteBatch b;
  b.readings.push_back(Row(1, "p"));
  ASSERT_TRUE(store->Commit(b).ok());
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(store->reading_rows(), 1u);
}

}  // namespace
}  // namespace vg
