#include "vitalgate/core/spsc_ring.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "vitalgate/core/doorbell.h"

namespace vg {
namespace {

TEST(SpscRingTest, FifoAndBounded) {
  SpscRing<int> ring(4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring.TryPush(i));
  EXPECT_FALSE(ring.TryPush(99));
  EXPECT_EQ(ring.SizeApprox(), 4u);
  int v = -1;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ring.TryPop(v));
    EXPECT_EQ(v, i);
  }
  EXPECT_FALSE(ring.TryPop(v));
  EXPECT_TRUE(ring.Empty());
}

TEST(SpscRingTest, DrainRespectsLimitAndWrapsAround) {
  SpscRing<std::string> ring(8);
  int next = 0, seen = 0;
  for (int round = 0; round < 50; ++round) {
    while (ring.TryPush(std::to_string(next))) ++next;
    const std::size_t n = ring.Drain([&](std::string& s) { EXPECT_EQ(s, std::to_string(seen++)); }, 3);
    EXPECT_EQ(n, 3u);
  }
}

// Two threads hand over a million items; every item arrives once, in order. Run under TSan in CI.
TEST(SpscRingTest, ConcurrentHandOffKeepsOrderAndLosesNothing) {
  constexpr std::uint64_t kCount = 1'000'000;
  SpscRing<std::uint64_t> ring(1024);
  Doorbell bell;
  std::thread producer([&] {
    for (std::uint64_t i = 1; i <= kCount; ++i) {
      while (!ring.TryPush(i)) std::this_thread::yield();
      if (i % 64 == 0) bell.Ring();
    }
    bell.Ring();
  });
  std::uint64_t expected = 1;
  while (expected <= kCount) {
    const std::size_t n = ring.Drain(
        [&](std::uint64_t v) {
          ASSERT_EQ(v, expected);
          ++expected;
        },
        256);
    if (n == 0) bell.Wait(std::chrono::milliseconds(10), [&] { return !ring.Empty(); });
  }
  producer.join();
  EXPECT_EQ(expected, kCount + 1);
}

}  // namespace
}  // namespace vg
