// The backends every engine test runs on.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include <salam/loop.hpp>

namespace salam::testing {

inline std::string backend_name(const ::testing::TestParamInfo<BackendKind>& info) {
  return std::string(to_string(info.param));
}

// Skips (with the reason) when the kernel cannot run io_uring at all; on
// such a machine only the epoll half of the suite is meaningful.
#define SALAM_REQUIRE_BACKEND(kind)                                          \
  do {                                                                       \
    if ((kind) == ::salam::BackendKind::io_uring) {                          \
      std::string why;                                                       \
      if (::salam::resolve_backend(::salam::BackendKind::automatic, &why) != \
          ::salam::BackendKind::io_uring) {                                  \
        GTEST_SKIP() << "io_uring unavailable here: " << why;                \
      }                                                                      \
    }                                                                        \
  } while (0)

// A test suite run once per backend: derive a suite from it and
// instantiate it with SALAM_INSTANTIATE_FOR_BACKENDS.
class LoopBackendTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override { SALAM_REQUIRE_BACKEND(GetParam()); }
  // Loop options for the backend under test.
  LoopOptions options() const {
    LoopOptions options;
    options.backend = GetParam();
    return options;
  }
};

#define SALAM_INSTANTIATE_FOR_BACKENDS(suite)                                         \
  INSTANTIATE_TEST_SUITE_P(                                                           \
      Backends, suite,                                                                \
      ::testing::Values(::salam::BackendKind::io_uring, ::salam::BackendKind::epoll), \
      ::salam::testing::backend_name)

}  // namespace salam::testing
