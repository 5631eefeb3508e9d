// One conformance suite run over every byte codec spec (with and without the
// shuffle filter), then spec parsing and zstd frame-header attacks.
//
// The hostile-input cases rely on the contract in codecs/byte_codec.h:
// Decompress returns OK (only when the damage is undetectable, and then it
// filled exactly dst.size() bytes) or Corruption; it never crashes or reads
// or writes out of bounds. Run under ASan/UBSan to make the last part count.
#include "codecs/byte_codec.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/coding.h"
#include "base/random.h"

namespace shoal {
namespace {

using Bytes = std::vector<std::byte>;

constexpr size_t kMiB = size_t{1} << 20;

Bytes RandomBytes(size_t size, uint64_t seed) {
  SplitMix64 rng(seed);
  Bytes out(size);
  for (std::byte& b : out) b = static_cast<std::byte>(rng.Next());
  return out;
}

// Typed data with structure only visible per element: a float32 ramp.
Bytes FloatRamp(size_t size) {
  Bytes out(size);
  const size_t count = size / sizeof(float);
  for (size_t i = 0; i < count; ++i) {
    const float value = 1000.0f + 0.01f * static_cast<float>(i);
    std::memcpy(out.data() + i * sizeof(float), &value, sizeof(float));
  }
  for (size_t i = count * sizeof(float); i < size; ++i) out[i] = std::byte{7};
  return out;
}

// Compressible bytes for sizes that are not a multiple of anything.
Bytes Text(size_t size) {
  static constexpr std::string_view kWords =
      "the quick brown fox jumps over the lazy dog; ";
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<std::byte>(kWords[(i * 7 + i / 13) % kWords.size()]);
  }
  return out;
}

Bytes MustCompress(const ByteCodec& codec, ByteSpan src) {
  Bytes out(codec.MaxCompressedSize(src.size()));
  Result<size_t> written = codec.Compress(src, out);
  if (!written.ok()) {
    ADD_FAILURE() << codec.spec() << ": " << written.status();
    return {};
  }
  EXPECT_LE(*written, out.size());
  out.resize(*written);
  return out;
}

// Decompresses into a buffer of `size` bytes with guard bytes on both sides,
// and fails the test if a guard changed (a write outside dst that ASan could
// only see if the buffer were exactly sized).
Status DecompressGuarded(const ByteCodec& codec, ByteSpan src, size_t size,
                         Bytes* out = nullptr) {
  constexpr size_t kGuard = 64;
  Bytes buffer(size + 2 * kGuard, std::byte{0xA5});
  const Status status =
      codec.Decompress(src, MutableByteSpan(buffer.data() + kGuard, size));
  for (size_t i = 0; i < kGuard; ++i) {
    EXPECT_EQ(buffer[i], std::byte{0xA5}) << "write before dst";
    EXPECT_EQ(buffer[kGuard + size + i], std::byte{0xA5}) << "write after dst";
  }
  if (out != nullptr)
    out->assign(buffer.begin() + kGuard, buffer.end() - kGuard);
  return status;
}

// OK or Corruption; anything else (or a crash) breaks the contract.
void ExpectOkOrCorruption(const Status& status) {
  EXPECT_TRUE(status.ok() || status.code() == StatusCode::kCorruption)
      << status;
}

void ExpectCorruption(const Status& status) {
  EXPECT_EQ(status.code(), StatusCode::kCorruption) << status;
}

struct CodecCase {
  std::string spec;
  size_t element_size;
};

void PrintTo(const CodecCase& c, std::ostream* os) {
  *os << c.spec << " (element size " << c.element_size << ")";
}

std::vector<CodecCase> AllCodecCases() {
  std::vector<CodecCase> cases;
  for (const char* spec :
       {"raw", "lz4", "lz4hc:1", "lz4hc:12", "zstd:1", "zstd:3", "zstd:19"}) {
    cases.push_back({spec, 1});
    for (size_t element_size : {1, 2, 4, 8}) {
      cases.push_back({std::string(spec) + "+shuffle", element_size});
    }
  }
  return cases;
}

std::string CaseName(const testing::TestParamInfo<CodecCase>& info) {
  std::string name;
  for (char c : info.param.spec) {
    name += (c == ':' || c == '+' || c == '-') ? '_' : c;
  }
  if (info.param.spec.ends_with("+shuffle")) {
    name += std::to_string(info.param.element_size);
  }
  return name;
}

class ByteCodecConformanceTest : public testing::TestWithParam<CodecCase> {
 protected:
  void SetUp() override {
    Result<std::shared_ptr<const ByteCodec>> codec = MakeByteCodec(
        GetParam().spec, {.element_size = GetParam().element_size});
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *codec;
  }

  void ExpectRoundTrip(const Bytes& input) {
    SCOPED_TRACE(testing::Message() << "input of " << input.size() << " bytes");
    const Bytes compressed = MustCompress(*codec_, input);
    Bytes output;
    ASSERT_TRUE(
        DecompressGuarded(*codec_, compressed, input.size(), &output).ok());
    EXPECT_TRUE(output == input);
  }

  bool is_raw() const { return GetParam().spec.starts_with("raw"); }

  std::shared_ptr<const ByteCodec> codec_;
};

TEST_P(ByteCodecConformanceTest, EmptyInput) { ExpectRoundTrip({}); }

TEST_P(ByteCodecConformanceTest, OneByte) {
  ExpectRoundTrip({std::byte{0x42}});
}

TEST_P(ByteCodecConformanceTest, SizesNotAMultipleOfTheElementSize) {
  for (size_t size : {2, 3, 5, 7, 9, 15, 17, 31, 33, 63, 65, 127, 1000, 1001,
                      1003, 1005, 4097, 65537}) {
    ExpectRoundTrip(Text(size));
    ExpectRoundTrip(RandomBytes(size, size));
  }
}

TEST_P(ByteCodecConformanceTest, IncompressibleMiB) {
  const Bytes input = RandomBytes(kMiB, 1);
  ExpectRoundTrip(input);
  EXPECT_LE(MustCompress(*codec_, input).size(),
            codec_->MaxCompressedSize(kMiB));
}

// Without the shuffle filter lz4 finds nothing to match in a float ramp, so
// this case only checks the round trip; the gain is ShuffleFilterTest's.
TEST_P(ByteCodecConformanceTest, CompressibleTypedMiB) {
  ExpectRoundTrip(FloatRamp(kMiB + 3));
}

TEST_P(ByteCodecConformanceTest, CompressibleTextMiB) {
  const Bytes input = Text(kMiB + 1);
  ExpectRoundTrip(input);
  if (!is_raw()) {
    EXPECT_LT(MustCompress(*codec_, input).size(), input.size() / 4);
  }
}

TEST_P(ByteCodecConformanceTest, CompressRejectsTooSmallOutput) {
  const Bytes input = Text(1000);
  Bytes out(codec_->MaxCompressedSize(input.size()) - 1);
  EXPECT_EQ(codec_->Compress(input, out).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(ByteCodecConformanceTest, SpecRoundTrips) {
  Result<std::shared_ptr<const ByteCodec>> again =
      MakeByteCodec(codec_->spec(), {.element_size = GetParam().element_size});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->spec(), codec_->spec());
  // Equal specs must mean compatible codecs.
  const Bytes input = FloatRamp(10000);
  Bytes output;
  ASSERT_TRUE(DecompressGuarded(**again, MustCompress(*codec_, input),
                                input.size(), &output)
                  .ok());
  EXPECT_TRUE(output == input);
}

TEST_P(ByteCodecConformanceTest, TruncatedInputIsCorruption) {
  const Bytes small = Text(300);
  const Bytes compressed = MustCompress(*codec_, small);
  for (size_t length = 0; length < compressed.size(); ++length) {
    SCOPED_TRACE(testing::Message()
                 << "prefix " << length << " of " << compressed.size());
    ExpectCorruption(DecompressGuarded(
        *codec_, ByteSpan(compressed).first(length), small.size()));
  }

  const Bytes large = FloatRamp(kMiB);
  const Bytes big = MustCompress(*codec_, large);
  for (size_t length :
       {size_t{0}, size_t{1}, size_t{5}, big.size() / 4, big.size() / 2,
        big.size() * 3 / 4, big.size() - 2, big.size() - 1}) {
    SCOPED_TRACE(testing::Message()
                 << "prefix " << length << " of " << big.size());
    ExpectCorruption(
        DecompressGuarded(*codec_, ByteSpan(big).first(length), large.size()));
  }
}

TEST_P(ByteCodecConformanceTest, BitFlipsNeverEscapeTheContract) {
  const Bytes small = Text(2000);
  const Bytes compressed = MustCompress(*codec_, small);
  size_t detected = 0;
  for (size_t pos = 0; pos < compressed.size(); ++pos) {
    for (int bit : {0, 3, 7}) {
      Bytes damaged = compressed;
      damaged[pos] ^= static_cast<std::byte>(1 << bit);
      const Status status = DecompressGuarded(*codec_, damaged, small.size());
      ExpectOkOrCorruption(status);
      if (!status.ok()) ++detected;
    }
  }
  // raw cannot notice a flipped bit; the compressors notice some.
  if (is_raw()) {
    EXPECT_EQ(detected, 0u);
  } else {
    EXPECT_GT(detected, 0u);
  }

  const Bytes large = FloatRamp(kMiB);
  const Bytes big = MustCompress(*codec_, large);
  SplitMix64 rng(5);
  for (int i = 0; i < 64; ++i) {
    Bytes damaged = big;
    damaged[rng.Bounded(damaged.size())] ^=
        static_cast<std::byte>(1 << (rng.Bounded(8)));
    ExpectOkOrCorruption(DecompressGuarded(*codec_, damaged, large.size()));
  }
}

TEST_P(ByteCodecConformanceTest, LyingSizeIsCorruption) {
  for (const Bytes& input : {Bytes{}, Text(1000), FloatRamp(kMiB)}) {
    SCOPED_TRACE(testing::Message() << "input of " << input.size() << " bytes");
    const Bytes compressed = MustCompress(*codec_, input);
    ExpectCorruption(DecompressGuarded(*codec_, compressed, input.size() + 1));
    if (!input.empty()) {
      ExpectCorruption(
          DecompressGuarded(*codec_, compressed, input.size() - 1));
    }
  }
}

TEST_P(ByteCodecConformanceTest, GarbageInput) {
  // A real header in front of garbage gets past the first sanity checks.
  const Bytes header = MustCompress(*codec_, Text(5000));
  uint64_t seed = 0;
  for (size_t size : {0, 1, 2, 3, 4, 7, 16, 100, 1000, 65536}) {
    for (bool with_header : {false, true}) {
      Bytes garbage = RandomBytes(size, ++seed);
      if (with_header) {
        const size_t n = std::min<size_t>(garbage.size(), 6);
        std::copy_n(header.begin(), std::min(n, header.size()),
                    garbage.begin());
      }
      for (size_t expected : {0, 1, 100, 4096, 5000}) {
        const Status status = DecompressGuarded(*codec_, garbage, expected);
        ExpectOkOrCorruption(status);
        if (is_raw() && size != expected) ExpectCorruption(status);
      }
    }
  }
}

TEST_P(ByteCodecConformanceTest, ConcurrentUseOfOneCodec) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 8; ++round) {
        const Bytes input = round % 2 == 0 ? FloatRamp(20000 + 1000 * t + round)
                                           : Text(30000 + 7 * t + round);
        Bytes compressed(codec_->MaxCompressedSize(input.size()));
        Result<size_t> written = codec_->Compress(input, compressed);
        if (!written.ok()) {
          ++failures[t];
          continue;
        }
        compressed.resize(*written);
        Bytes output(input.size());
        if (!codec_->Decompress(compressed, output).ok() || output != input) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, ByteCodecConformanceTest,
                         testing::ValuesIn(AllCodecCases()), CaseName);

// The reason the filter exists: grouping the bytes of each float by
// significance turns the slowly changing high bytes into long runs.
TEST(ShuffleFilterTest, ImprovesCompressionOfFloats) {
  const Bytes input = FloatRamp(kMiB);
  for (const char* spec : {"lz4", "lz4hc:9", "zstd:1", "zstd:3", "zstd:19"}) {
    SCOPED_TRACE(spec);
    auto plain = MakeByteCodec(spec);
    auto shuffled =
        MakeByteCodec(std::string(spec) + "+shuffle", {.element_size = 4});
    ASSERT_TRUE(plain.ok() && shuffled.ok());
    const size_t plain_size = MustCompress(**plain, input).size();
    const size_t shuffled_size = MustCompress(**shuffled, input).size();
    EXPECT_LT(shuffled_size, plain_size * 3 / 4)
        << "plain " << plain_size << ", shuffled " << shuffled_size;
  }
}

TEST(ByteCodecSpecTest, RejectsMalformedSpecs) {
  for (const char* spec : {"zstd:0",
                           "zstd:23",
                           "zstd:-8",
                           "lz4hc:0",
                           "lz4hc:13",
                           "lz4:3",
                           "raw:1",
                           "foo",
                           "",
                           ":3",
                           "ZSTD",
                           "zstd:x",
                           "zstd:",
                           "zstd:3x",
                           "zstd: 3",
                           "zstd:+3",
                           "zstd:99999999999",
                           "zstd+foo",
                           "zstd+shuffle+shuffle",
                           "zstd+shuffle:3",
                           "raw+"}) {
    SCOPED_TRACE(spec);
    EXPECT_EQ(MakeByteCodec(spec).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(ByteCodecSpecTest, RejectsBadShuffleElementSizes) {
  for (size_t element_size : {0, 17, 1000}) {
    EXPECT_EQ(MakeByteCodec("zstd+shuffle", {.element_size = element_size})
                  .status()
                  .code(),
              StatusCode::kInvalidArgument);
  }
  // The element size only matters with the filter.
  EXPECT_TRUE(MakeByteCodec("zstd", {.element_size = 0}).ok());
}

TEST(ByteCodecSpecTest, UnknownNameListsKnownNames) {
  const Status status = MakeByteCodec("foo:3").status();
  EXPECT_NE(status.message().find("lz4, lz4hc, raw, zstd"),
            std::string_view::npos)
      << status;
}

TEST(ByteCodecSpecTest, SpecsAreNormalized) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"raw", "raw"},
      {"lz4", "lz4"},
      {"lz4hc", "lz4hc:9"},
      {"lz4hc:12", "lz4hc:12"},
      {"zstd", "zstd:3"},
      {"zstd:019", "zstd:19"},
      {"zstd:-7", "zstd:-7"},
      {"zstd+shuffle", "zstd:3+shuffle"},
      {"lz4+shuffle", "lz4+shuffle"},
  };
  for (const auto& [spec, normalized] : cases) {
    Result<std::shared_ptr<const ByteCodec>> codec =
        MakeByteCodec(spec, {.element_size = 4});
    ASSERT_TRUE(codec.ok()) << spec << ": " << codec.status();
    EXPECT_EQ((*codec)->spec(), normalized);
  }
}

TEST(ByteCodecRegistryTest, NamesTheBuiltInCodecs) {
  EXPECT_EQ(ByteCodecRegistry::Names(),
            (std::vector<std::string>{"lz4", "lz4hc", "raw", "zstd"}));
  // A second registration under a taken name is refused.
  EXPECT_FALSE(ByteCodecRegistry::Register(
      "raw",
      [](std::optional<int>) -> Result<std::shared_ptr<const ByteCodec>> {
        return Internal("must not be called");
      }));
  EXPECT_TRUE(MakeByteCodec("raw").ok());
}

// Frame layout (RFC 8878): magic, frame header descriptor, optional window
// descriptor / dictionary id / frame content size, then blocks.
class ZstdFrameTest : public testing::Test {
 protected:
  static constexpr uint8_t kMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
  static constexpr uint64_t kOneTiB = uint64_t{1} << 40;

  void SetUp() override {
    auto codec = MakeByteCodec("zstd:3");
    ASSERT_TRUE(codec.ok());
    codec_ = *codec;
  }

  static void Put(Bytes& out, std::initializer_list<int> bytes) {
    for (int b : bytes) out.push_back(static_cast<std::byte>(b));
  }
  static void PutU64(Bytes& out, uint64_t v) {
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<std::byte>(v >> (8 * i)));
  }
  // A last raw block holding `payload`.
  static void PutRawBlock(Bytes& out, const Bytes& payload) {
    const uint32_t header = (static_cast<uint32_t>(payload.size()) << 3) | 1;
    Put(out, {static_cast<int>(header & 0xFF),
              static_cast<int>((header >> 8) & 0xFF),
              static_cast<int>(header >> 16)});
    out.insert(out.end(), payload.begin(), payload.end());
  }

  // Times Decompress into a `size`-byte buffer; it must fail fast.
  void ExpectQuickCorruption(const Bytes& frame, size_t size) {
    const auto start = std::chrono::steady_clock::now();
    ExpectCorruption(DecompressGuarded(*codec_, frame, size));
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::milliseconds(500));
  }

  std::shared_ptr<const ByteCodec> codec_;
};

TEST_F(ZstdFrameTest, HandBuiltFrameClaimingOneTiB) {
  Bytes frame;
  Put(frame, {kMagic[0], kMagic[1], kMagic[2], kMagic[3]});
  Put(frame, {0xE0});  // 8-byte content size, single segment, no checksum.
  PutU64(frame, kOneTiB);
  PutRawBlock(frame, Bytes(10, std::byte{1}));
  ExpectQuickCorruption(frame, 10);
  ExpectQuickCorruption(frame, 0);
}

TEST_F(ZstdFrameTest, RealFramePatchedToClaimOneTiB) {
  const Bytes input = Text(5000);
  const Bytes real = MustCompress(*codec_, input);
  ASSERT_GE(real.size(), 6u);
  const int descriptor = static_cast<int>(real[4]);
  const bool single_segment = (descriptor >> 5) & 1;
  const size_t window_size = single_segment ? 0 : 1;
  constexpr size_t kDictIdSizes[] = {0, 1, 2, 4};
  const size_t dict_size = kDictIdSizes[descriptor & 3];
  const size_t fcs_sizes[] = {single_segment ? size_t{1} : size_t{0}, 2, 4, 8};
  const size_t fcs_size = fcs_sizes[descriptor >> 6];
  const size_t header_end = 5 + window_size + dict_size + fcs_size;
  ASSERT_LT(header_end, real.size());

  Bytes patched(real.begin(), real.begin() + 5 + window_size + dict_size);
  patched[4] = static_cast<std::byte>((descriptor & 0x3F) | 0xC0);
  PutU64(patched, kOneTiB);
  patched.insert(patched.end(), real.begin() + header_end, real.end());
  ExpectQuickCorruption(patched, input.size());
}

TEST_F(ZstdFrameTest, UnknownContentSizeWithHugeWindowDecodesInPlace) {
  // No content size and a 2 GiB window: single-pass decoding uses dst as the
  // window, so this decodes without allocating, and the size is checked after.
  Bytes frame;
  Put(frame, {kMagic[0], kMagic[1], kMagic[2], kMagic[3]});
  Put(frame, {0x00, 21 << 3});  // Window descriptor: 2^(10 + 21) bytes.
  const Bytes payload = Text(10);
  PutRawBlock(frame, payload);
  Bytes output;
  ASSERT_TRUE(DecompressGuarded(*codec_, frame, payload.size(), &output).ok());
  EXPECT_TRUE(output == payload);
  ExpectQuickCorruption(frame, payload.size() + 1);
  ExpectQuickCorruption(frame, payload.size() - 1);
}

TEST_F(ZstdFrameTest, SkippableFrameIsCorruption) {
  Bytes frame;
  Put(frame, {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4});
  ExpectQuickCorruption(frame, 0);
}

TEST_F(ZstdFrameTest, TrailingBytesAndSecondFramesAreCorruption) {
  const Bytes input = Text(100);
  const Bytes frame = MustCompress(*codec_, input);
  Bytes trailing = frame;
  trailing.push_back(std::byte{0});
  ExpectQuickCorruption(trailing, input.size());
  Bytes two = frame;
  two.insert(two.end(), frame.begin(), frame.end());
  ExpectQuickCorruption(two, input.size());
  ExpectQuickCorruption(two, 2 * input.size());
}

}  // namespace
}  // namespace shoal
