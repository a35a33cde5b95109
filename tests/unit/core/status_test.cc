#include "vitalgate/core/status.h"

#include <gtest/gtest.h>

namespace vg {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ExitCode(), 0);
}

TEST(StatusTest, InputErrorsExitTwoEnvironmentErrorsExitOne) {
  EXPECT_EQ(InvalidArgument("x").ExitCode(), 2);
  EXPECT_EQ(NotFound("x").ExitCode(), 2);
  EXPECT_EQ(PermissionDenied("x").ExitCode(), 2);
  EXPECT_EQ(Unavailable("x").ExitCode(), 1);
  EXPECT_EQ(DataLoss("x").ExitCode(), 1);
  EXPECT_EQ(Internal("x").ExitCode(), 1);
}

TEST(StatusTest, WithContextPrefixesMessageAndKeepsCode) {
  const Status s = InvalidArgument("expected an integer").WithContext("mqtt.port");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "mqtt.port: expected an integer");
}

Result<int> Half(int v) {
  if (v % 2 != 0) return InvalidArgument("odd");
  return v / 2;
}

TEST(ResultTest, HoldsValueOrStatus) {
  auto a = Half(8);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 4);
  auto b = Half(3);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "odd");
}

}  // namespace
}  // namespace vg
