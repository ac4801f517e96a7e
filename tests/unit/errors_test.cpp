// salam's own error category.
#include <system_error>

#include <gtest/gtest.h>

#include <salam/result.hpp>

namespace salam {
namespace {

TEST(ErrorsTest, EndOfFileIsInTheSalamCategory) {
  const std::error_code error = end_of_file();
  EXPECT_TRUE(error);
  EXPECT_STREQ(error.category().name(), "salam");
  EXPECT_EQ(error.message(), "end of file");
  EXPECT_EQ(error, end_of_file());
  EXPECT_EQ(&error.category(), &salam_category());
  // Not an errno: no generic error compares equal to it.
  EXPECT_NE(error, std::make_error_code(std::errc::io_error));
  EXPECT_NE(error, timed_out());
  EXPECT_NE(error, cancelled());
}

}  // namespace
}  // namespace salam
