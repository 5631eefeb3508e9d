// Helpers shared by the format test suites (dataset, chunk, metadata,
// corruption, crash): status assertions, temporary directories, fresh mem://
// names, deterministic sample contents, and a store wrapper that counts the
// reads each key receives.
//
// Sample contents are a pure function of (salt, index, byte position), so a
// test knows what every sample must hold without asking the code under test.
//
// Thread-safety: CountingStore is thread-safe (like every Store); the rest
// are plain functions and single-owner values.
#ifndef SHOAL_TESTS_FORMAT_FORMAT_TEST_UTIL_H_
#define SHOAL_TESTS_FORMAT_FORMAT_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/random.h"
#include "base/result.h"
#include "base/types.h"
#include "format/internal/mem_store.h"
#include "format/store.h"

namespace shoal::format_test {

// Encoders written from format/FORMAT.md (not the library's own), so tests
// can build objects byte by byte, including lying ones.
inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void PutLE(std::string& out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

inline ::testing::AssertionResult Ok(const Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
template <typename T>
::testing::AssertionResult Ok(const Result<T>& result) {
  return Ok(result.status());
}

/// Success when `status` has `code`; the failure message shows the status.
inline ::testing::AssertionResult HasCode(const Status& status,
                                          StatusCode code) {
  if (status.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected " << StatusCodeName(code) << ", got " << status;
}
template <typename T>
::testing::AssertionResult HasCode(const Result<T>& result, StatusCode code) {
  return HasCode(result.status(), code);
}

/// A tiny, well-mixed hash for deterministic test data.
inline uint64_t Mix(uint64_t x) {
  return SplitMix64::Mix(x + SplitMix64::kGolden);
}

/// The bytes of sample `index` of a data set named by `salt`: half smooth
/// (compressible) and half noise, changing with the position so that a
/// swapped or shifted byte is noticed.
inline std::vector<std::byte> SampleBytes(uint64_t salt, uint64_t index,
                                          size_t size) {
  std::vector<std::byte> out(size);
  const uint64_t h = Mix(salt * 1000003 + index);
  const bool noisy = (h & 1) != 0;
  for (size_t k = 0; k < size; ++k) {
    uint64_t v = noisy ? Mix(h + k) : (h >> 8) + k / 5;
    out[k] = static_cast<std::byte>(v & 0xff);
  }
  return out;
}

inline ByteSpan Span(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

/// A directory made with mkdtemp and removed (with its contents) at the end.
class TempDir {
 public:
  TempDir() {
    std::string templ = ::testing::TempDir() + "shoal_format_test.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << templ << ": " << std::strerror(errno);
      return;
    }
    std::error_code ec;
    path_ = std::filesystem::canonical(templ, ec).string();
    if (ec) path_ = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string url(std::string_view sub = "ds") const {
    return "file://" + path_ + "/" + std::string(sub);
  }

 private:
  std::string path_;
};

/// A mem:// name no other test uses, emptied first.
inline std::string FreshMemName(std::string_view tag = "") {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "shoal_test";
  if (info != nullptr) {
    name += std::string(".") + info->test_suite_name() + "." + info->name();
  }
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  name += "." + std::string(tag) + std::to_string(counter.fetch_add(1));
  ResetMemStoreForTesting(name);
  return name;
}
inline std::string FreshMemUrl(std::string_view tag = "") {
  return "mem://" + FreshMemName(tag);
}

/// Forwards to a mem:// store of the same name and counts, per key, the
/// Read and ReadRange calls (each range of a ReadRanges call counts as one)
/// and the bytes they return, and the ReadRanges calls (round trips).
/// Registered as "countmem://NAME" by RegisterCountingStore().
class CountingStore final : public ForwardingStore {
 public:
  struct Reads {
    uint64_t whole = 0;   // Read() calls
    uint64_t ranges = 0;  // ReadRange() calls
    uint64_t bytes = 0;   // bytes returned by either
  };

  CountingStore(std::shared_ptr<Store> inner, std::string name)
      : ForwardingStore(std::move(inner)), name_(std::move(name)) {}

  std::string url() const override { return "countmem://" + name_; }
  Result<Buffer> Read(std::string_view key) const override {
    auto r = ForwardingStore::Read(key);
    Count(key, true, r.ok() ? r->size() : 0);
    return r;
  }
  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    auto r = ForwardingStore::ReadRange(key, offset, length);
    Count(key, false, r.ok() ? r->size() : 0);
    return r;
  }
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const override {
    auto out = ForwardingStore::ReadRanges(ranges, allocate);
    for (size_t i = 0; i < ranges.size(); ++i) {
      Count(ranges[i].key, false, out[i].ok() ? out[i]->size() : 0);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++round_trips_;
    return out;
  }
  /// ReadRanges() calls since construction or the last Reset().
  uint64_t round_trips() const {
    std::lock_guard<std::mutex> lock(mu_);
    return round_trips_;
  }

  /// Reads per key since construction or the last Reset(), keys starting
  /// with `prefix` only.
  std::map<std::string, Reads> ReadsUnder(std::string_view prefix) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, Reads> out;
    for (const auto& [key, reads] : reads_) {
      if (key.starts_with(prefix)) out.emplace(key, reads);
    }
    return out;
  }
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    reads_.clear();
    round_trips_ = 0;
  }

 private:
  void Count(std::string_view key, bool whole, uint64_t bytes) const {
    std::lock_guard<std::mutex> lock(mu_);
    Reads& r = reads_[std::string(key)];
    (whole ? r.whole : r.ranges) += 1;
    r.bytes += bytes;
  }

  std::string name_;
  mutable std::mutex mu_;
  mutable std::map<std::string, Reads> reads_;
  mutable uint64_t round_trips_ = 0;
};

/// Registers the "countmem" scheme once per process.
inline void RegisterCountingStore() {
  static const bool registered = [] {
    StoreRegistry::Register(
        "countmem",
        [](std::string_view location,
           const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
          SHOAL_ASSIGN_OR_RETURN(
              auto inner, OpenStore("mem://" + std::string(location), options));
          return std::shared_ptr<Store>(
              std::make_shared<CountingStore>(inner, std::string(location)));
        });
    return true;
  }();
  (void)registered;
}

}  // namespace shoal::format_test

#endif  // SHOAL_TESTS_FORMAT_FORMAT_TEST_UTIL_H_
