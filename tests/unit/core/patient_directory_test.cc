#include "vitalgate/core/patient_directory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace vg {
namespace {

std::string NameOf(std::size_t i) { return "patient-with-a-long-id-" + std::to_string(i); }

TEST(NameDirectoryTest, NamesAcrossBlocksStayWhereTheyWereInterned) {
  NameDirectory directory(1000);
  std::vector<const std::string*> where;
  for (std::size_t i = 0; i < 700; ++i) {
    auto index = directory.Intern(NameOf(i));
    ASSERT_TRUE(index.ok()) << index.status().message();
    ASSERT_EQ(*index, i);
    where.push_back(&directory.Name(*index));
  }
  for (std::size_t i = 0; i < 700; ++i) {
    EXPECT_EQ(directory.Name(static_cast<PatientIndex>(i)), NameOf(i));
    // Never moved: a reader holding a reference keeps a valid name.
    EXPECT_EQ(&directory.Name(static_cast<PatientIndex>(i)), where[i]);
    EXPECT_EQ(directory.Find(NameOf(i)), static_cast<PatientIndex>(i));
  }
  EXPECT_EQ(directory.size(), 700u);
  EXPECT_EQ(directory.Find("nobody"), std::nullopt);
}

TEST(NameDirectoryTest, InterningAKnownNameReturnsItsIndex) {
  NameDirectory directory(10);
  ASSERT_EQ(*directory.Intern("bed-1"), 0u);
  ASSERT_EQ(*directory.Intern("bed-2"), 1u);
  EXPECT_EQ(*directory.Intern("bed-1"), 0u);
  EXPECT_EQ(directory.size(), 2u);
}

TEST(NameDirectoryTest, ACapacityThatIsNoMultipleOfABlockIsHeldExactly) {
  NameDirectory directory(300);
  for (std::size_t i = 0; i < 300; ++i) ASSERT_TRUE(directory.Intern(NameOf(i)).ok()) << i;
  auto over = directory.Intern("one-too-many");
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("limit 300"), std::string::npos)
      << over.status().message();
  EXPECT_EQ(directory.Name(299), NameOf(299));
  EXPECT_EQ(directory.size(), 300u);
}

TEST(NameDirectoryTest, AReaderSeesEveryNamePublishedToIt) {
  // The writer interns while a reader turns published indexes into names, as the store and
  // forwarder threads do; ThreadSanitizer checks that no block is read before it is written.
  NameDirectory directory(2000);
  std::atomic<std::size_t> published{0};
  std::thread reader([&] {
    std::size_t seen = 0;
    // A bound on a stalled writer only, far above the milliseconds this takes.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (seen < 1500 && std::chrono::steady_clock::now() < give_up) {
      const std::size_t n = published.load(std::memory_order_acquire);
      for (; seen < n; ++seen) {
        EXPECT_EQ(directory.Name(static_cast<PatientIndex>(seen)), NameOf(seen));
      }
      std::this_thread::yield();
    }
    EXPECT_EQ(seen, 1500u);
  });
  for (std::size_t i = 0; i < 1500; ++i) {
    if (!directory.Intern(NameOf(i)).ok()) {
      ADD_FAILURE() << "interning " << i << " failed";
      break;
    }
    published.store(i + 1, std::memory_order_release);
  }
  reader.join();
}

}  // namespace
}  // namespace vg
