// The conformance suite every Store implementation must pass: the contract
// of format/store.h (reads, ranges, listing, key rules, atomic replacement,
// concurrency, reopening by URL) checked the same way for every scheme.
//
// To run it for a store, link store_conformance.cc into the test binary and
// instantiate the suite with one StoreConformanceParam per configuration:
//
//   INSTANTIATE_TEST_SUITE_P(Mem, StoreConformanceTest,
//                            ::testing::Values(MemStoreParam()),
//                            StoreConformanceParamName);
//
// Thread-safety: GoogleTest runs each test on its own; the suite starts its
// own threads only inside the concurrency test.
#ifndef SHOAL_TESTS_FORMAT_STORE_CONFORMANCE_H_
#define SHOAL_TESTS_FORMAT_STORE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "base/result.h"
#include "format/store.h"

namespace shoal {

/// A store made for one test, and how to get rid of it.
struct StoreUnderTest {
  std::shared_ptr<Store> store;
  /// Called after the test has dropped every handle to the store; removes
  /// what the store left behind (a temp directory, a named mem store's
  /// objects). May be empty.
  std::function<void()> cleanup;
};

struct StoreConformanceParam {
  /// Names the instantiation in test names; letters, digits and '_' only.
  std::string name;
  /// Returns a fresh, empty store; called once per test.
  std::function<Result<StoreUnderTest>()> make;
};

inline std::ostream& operator<<(std::ostream& os,
                                const StoreConformanceParam& param) {
  return os << param.name;
}

/// For the name-generator argument of INSTANTIATE_TEST_SUITE_P.
inline std::string StoreConformanceParamName(
    const ::testing::TestParamInfo<StoreConformanceParam>& info) {
  return info.param.name;
}

class StoreConformanceTest
    : public ::testing::TestWithParam<StoreConformanceParam> {
 protected:
  void SetUp() override {
    Result<StoreUnderTest> made = GetParam().make();
    ASSERT_TRUE(made.ok()) << made.status();
    store_ = made->store;
    cleanup_ = made->cleanup;
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();
    if (cleanup_) cleanup_();
  }

  std::shared_ptr<Store> store_;

 private:
  std::function<void()> cleanup_;
};

}  // namespace shoal

#endif  // SHOAL_TESTS_FORMAT_STORE_CONFORMANCE_H_
