// The "png" image codec: PngSuite conformance against pypng references
// (tests/data/pngsuite/REFS, made by make_png_refs.py), rejection of the
// corrupt PngSuite files, encode/decode round trips, and hostile input
// (truncations, bit flips, a header claiming 65535x65535).
//
// The hostile cases rely on the contract in codecs/image_codec.h: damaged
// input gives a Status, never a crash or an out-of-bounds access. Run under
// ASan/UBSan to make that part count.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <sstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/random.h"
#include "codecs/image_codec.h"

// Largest single operator-new request, to show that a lying header makes
// shoal allocate nothing sized by it. (libpng's own mallocs happen only
// after the header has passed the limits.)
static std::atomic<size_t> g_largest_new{0};

// GCC flags free() in a replaced operator delete as a mismatch; here new and
// delete are both malloc/free by construction.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(size_t size) {
  size_t seen = g_largest_new.load(std::memory_order_relaxed);
  while (size > seen && !g_largest_new.compare_exchange_weak(
                            seen, size, std::memory_order_relaxed)) {
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace shoal {
namespace {

using Bytes = std::vector<std::byte>;
using ::testing::HasSubstr;

const std::string kSuiteDir = std::string(SHOAL_TEST_DATA) + "/pngsuite/";

Bytes ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

std::string Sha256Hex(ByteSpan bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_size = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), md, &md_size, EVP_sha256(),
                       nullptr),
            1);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < md_size; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

std::shared_ptr<const ImageCodec> Png(const ImageLimits& limits = {}) {
  auto codec = MakeImageCodec("png", limits);
  EXPECT_TRUE(codec.ok()) << codec.status();
  return *codec;
}

// Decodes `bytes` whole; the status of the first failing step otherwise.
Result<Bytes> DecodeAll(const ImageCodec& codec, ByteSpan bytes,
                        Shape* shape = nullptr, ImageInfo* info_out = nullptr) {
  SHOAL_ASSIGN_OR_RETURN(const ImageInfo info, codec.ReadInfo(bytes));
  SHOAL_ASSIGN_OR_RETURN(const Shape s, codec.OutputShape(info, {}));
  SHOAL_ASSIGN_OR_RETURN(const uint64_t size, s.ByteSize(info.dtype));
  Bytes out(size);
  SHOAL_RETURN_IF_ERROR(codec.Decode(bytes, {}, out));
  if (shape != nullptr) *shape = s;
  if (info_out != nullptr) *info_out = info;
  return out;
}

struct Ref {
  std::string file;
  uint64_t height, width, channels;
  int bit_depth;
  std::string sha256;
};

std::vector<Ref> ReadRefs() {
  std::ifstream in(kSuiteDir + "REFS");
  EXPECT_TRUE(in.good());
  std::vector<Ref> refs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    Ref r;
    fields >> r.file >> r.height >> r.width >> r.channels >> r.bit_depth >>
        r.sha256;
    refs.push_back(r);
  }
  return refs;
}

TEST(PngCodec, RegisteredAndSniffs) {
  auto codec = Png();
  EXPECT_EQ(codec->name(), "png");
  const Bytes bytes = ReadFile(kSuiteDir + "basn2c08.png");
  EXPECT_TRUE(codec->Sniff(bytes));
  EXPECT_FALSE(codec->Sniff(ByteSpan(bytes).first(7)));
  EXPECT_FALSE(codec->Sniff(ReadFile(kSuiteDir + "xs1n0g01.png")));
  auto sniffed = SniffImageCodec(bytes);
  ASSERT_TRUE(sniffed.ok()) << sniffed.status();
  EXPECT_EQ((*sniffed)->name(), "png");
}

// Every valid PngSuite image decodes to pypng's pixels, bit for bit.
TEST(PngCodec, PngSuiteMatchesReference) {
  const std::vector<Ref> refs = ReadRefs();
  ASSERT_EQ(refs.size(), 162u);  // 161 test images and the logo
  auto codec = Png();
  for (const Ref& ref : refs) {
    SCOPED_TRACE(ref.file);
    const Bytes bytes = ReadFile(kSuiteDir + ref.file);
    Shape shape;
    ImageInfo info;
    auto pixels = DecodeAll(*codec, bytes, &shape, &info);
    ASSERT_TRUE(pixels.ok()) << pixels.status();
    EXPECT_EQ(shape, (Shape{ref.height, ref.width, ref.channels}));
    EXPECT_EQ(info.dtype, ref.bit_depth == 16 ? DType::kUInt16 : DType::kUInt8);
    EXPECT_EQ(info.format, "png");
    EXPECT_EQ(info.interlaced, ref.file[3] == 'i' && ref.file[0] != 'P');
    EXPECT_EQ(Sha256Hex(*pixels), ref.sha256);
  }
}

TEST(PngCodec, RejectsEveryCorruptPngSuiteFile) {
  const char* kCorrupt[] = {"xc1n0g08", "xc9n2c08", "xcrn0g04", "xcsn0g01",
                            "xd0n2c08", "xd3n2c08", "xd9n2c08", "xdtn0g01",
                            "xhdn0g08", "xlfn0g04", "xs1n0g01", "xs2n0g01",
                            "xs4n0g01", "xs7n0g01"};
  auto codec = Png();
  for (const char* name : kCorrupt) {
    SCOPED_TRACE(name);
    const Bytes bytes = ReadFile(kSuiteDir + name + ".png");
    auto pixels = DecodeAll(*codec, bytes);
    ASSERT_FALSE(pixels.ok());
    EXPECT_EQ(pixels.status().code(), StatusCode::kCorruption);
    EXPECT_THAT(std::string(pixels.status().message()), HasSubstr("png: "));
  }
  // The header of xcsn0g01 is fine; only the IDAT CRC is wrong, which Pillow
  // does not check. The error must come from Decode and name the CRC.
  const Bytes bad_crc = ReadFile(kSuiteDir + "xcsn0g01.png");
  auto info = codec->ReadInfo(bad_crc);
  ASSERT_TRUE(info.ok()) << info.status();
  Bytes out(32 * 32);
  const Status status = codec->Decode(bad_crc, {}, out);
  EXPECT_EQ(status.code(), StatusCode::kCorruption);
  EXPECT_THAT(std::string(status.message()), HasSubstr("CRC"));
}

TEST(PngCodec, ReadInfoReportsHeader) {
  auto codec = Png();
  struct Case {
    const char* file;
    uint8_t channels;
    int bit_depth;
    bool interlaced;
  };
  const Case kCases[] = {{"basn0g01", 1, 1, false},  {"basi0g16", 1, 16, true},
                         {"basn3p04", 3, 4, false},  {"tbbn3p08", 4, 8, false},
                         {"tbbn0g04", 2, 4, false},  {"tbrn2c08", 4, 8, false},
                         {"basn4a16", 2, 16, false}, {"basi6a08", 4, 8, true}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    auto info = codec->ReadInfo(ReadFile(kSuiteDir + c.file + ".png"));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->height, 32u);
    EXPECT_EQ(info->width, 32u);
    EXPECT_EQ(info->channels, c.channels);
    EXPECT_EQ(info->bit_depth, c.bit_depth);
    EXPECT_EQ(info->interlaced, c.interlaced);
    EXPECT_EQ(info->dtype, c.bit_depth == 16 ? DType::kUInt16 : DType::kUInt8);
  }
}

TEST(PngCodec, RefusesUnsupportedOptions) {
  auto codec = Png();
  auto info = codec->ReadInfo(ReadFile(kSuiteDir + "basn2c08.png"));
  ASSERT_TRUE(info.ok());
  ImageDecodeOptions rgb;
  rgb.channels = ImageDecodeOptions::Channels::kRgb;
  EXPECT_EQ(codec->OutputShape(*info, rgb).status().code(),
            StatusCode::kInvalidArgument);
  ImageDecodeOptions gray;
  gray.channels = ImageDecodeOptions::Channels::kGray;
  EXPECT_EQ(codec->OutputShape(*info, gray).status().code(),
            StatusCode::kInvalidArgument);
  ImageDecodeOptions half;
  half.scale_eighths = 4;
  EXPECT_EQ(codec->OutputShape(*info, half).status().code(),
            StatusCode::kInvalidArgument);
  ImageDecodeOptions outside;
  outside.region = ImageRegion{30, 0, 3, 32};
  EXPECT_EQ(codec->OutputShape(*info, outside).status().code(),
            StatusCode::kInvalidArgument);
  // A wrongly sized destination.
  Bytes small(10);
  EXPECT_EQ(
      codec->Decode(ReadFile(kSuiteDir + "basn2c08.png"), {}, small).code(),
      StatusCode::kInvalidArgument);
}

TEST(PngCodec, RegionIsACropOfTheWholeImage) {
  auto codec = Png();
  for (const char* file : {"basn2c16", "basi6a08", "s39i3p04", "basn0g01"}) {
    SCOPED_TRACE(file);
    const Bytes bytes = ReadFile(kSuiteDir + file + ".png");
    Shape shape;
    ImageInfo info;
    auto whole = DecodeAll(*codec, bytes, &shape, &info);
    ASSERT_TRUE(whole.ok()) << whole.status();
    ImageDecodeOptions options;
    options.region = ImageRegion{3, 5, 7, 11};
    auto region_shape = codec->OutputShape(info, options);
    ASSERT_TRUE(region_shape.ok());
    EXPECT_EQ(*region_shape, (Shape{7, 11, shape[2]}));
    Bytes region(*region_shape->ByteSize(info.dtype));
    ASSERT_TRUE(codec->Decode(bytes, options, region).ok());
    const size_t pixel = shape[2] * DTypeSize(info.dtype);
    for (size_t y = 0; y < 7; ++y) {
      ASSERT_EQ(0, std::memcmp(region.data() + y * 11 * pixel,
                               whole->data() + ((3 + y) * shape[1] + 5) * pixel,
                               11 * pixel));
    }
  }
}

TEST(PngCodec, RoundTripsEveryChannelCountAndDepth) {
  auto codec = Png();
  SplitMix64 rng(7);
  for (DType dtype : {DType::kUInt8, DType::kUInt16}) {
    for (uint64_t channels = 1; channels <= 4; ++channels) {
      for (int trial = 0; trial < 4; ++trial) {
        const uint64_t height = trial == 0 ? 1 : 1 + rng.Bounded(70);
        const uint64_t width = trial == 0 ? 1 : 1 + rng.Bounded(70);
        const Shape shape{height, width, channels};
        SCOPED_TRACE(shape.ToString() + " " + std::string(DTypeName(dtype)));
        Bytes pixels(*shape.ByteSize(dtype));
        for (std::byte& b : pixels) b = static_cast<std::byte>(rng.Next());
        ImageEncodeOptions options;
        options.compression_level = trial * 3;  // 0, 3, 6, 9
        auto encoded = codec->Encode(shape, dtype, pixels, options);
        ASSERT_TRUE(encoded.ok()) << encoded.status();
        Shape decoded_shape;
        ImageInfo info;
        auto decoded =
            DecodeAll(*codec, encoded->span(), &decoded_shape, &info);
        ASSERT_TRUE(decoded.ok()) << decoded.status();
        EXPECT_EQ(decoded_shape, shape);
        EXPECT_EQ(info.dtype, dtype);
        EXPECT_EQ(*decoded, pixels);
      }
    }
  }
}

TEST(PngCodec, EncodeRefusesBadInput) {
  auto codec = Png();
  Bytes pixels(2 * 2 * 5);
  EXPECT_EQ(codec->Encode({2, 2, 5}, DType::kUInt8, pixels, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(codec->Encode({2, 2}, DType::kUInt8, pixels, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      codec->Encode({2, 2, 1}, DType::kFloat32, Bytes(16), {}).status().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      codec->Encode({2, 2, 1}, DType::kUInt8, Bytes(3), {}).status().code(),
      StatusCode::kInvalidArgument);
  ImageEncodeOptions level10;
  level10.compression_level = 10;
  EXPECT_EQ(codec->Encode({2, 2, 1}, DType::kUInt8, Bytes(4), level10)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

// Every prefix of a file is an error or (for prefixes the decoder never
// needed) the full image; never a crash.
TEST(PngCodec, TruncationsAreErrors) {
  auto codec = Png();
  for (const char* file :
       {"basn0g01", "basi3p02", "basn6a16", "oi9n2c16", "s01i3p01"}) {
    SCOPED_TRACE(file);
    const Bytes bytes = ReadFile(kSuiteDir + file + ".png");
    const size_t step = bytes.size() > 2000 ? 7 : 1;
    for (size_t n = 0; n < bytes.size(); n += step) {
      auto pixels = DecodeAll(*codec, ByteSpan(bytes).first(n));
      // The decoder reads through IEND, so only the whole file decodes.
      EXPECT_FALSE(pixels.ok()) << n;
    }
  }
}

TEST(PngCodec, BitFlipsErrorOrDecode) {
  auto codec = Png();
  SplitMix64 rng(11);
  size_t decoded = 0, failed = 0;
  for (const char* file : {"basn0g04", "basi2c16", "tbbn3p08", "basn4a08",
                           "s35i3p04", "f99n0g04"}) {
    const Bytes original = ReadFile(kSuiteDir + file + ".png");
    for (int trial = 0; trial < 400; ++trial) {
      Bytes bytes = original;
      // 1 to 3 distinct bits (two flips of one bit would restore the file).
      const int flips = 1 + trial % 3;
      std::set<uint64_t> bits;
      while (bits.size() < static_cast<size_t>(flips)) {
        bits.insert(rng.Bounded(bytes.size() * 8));
      }
      for (uint64_t bit : bits) {
        bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
      }
      auto pixels = DecodeAll(*codec, bytes);
      ++(pixels.ok() ? decoded : failed);
    }
  }
  // Every byte of a PNG is under a CRC or the signature except chunk
  // lengths, whose damage desynchronises parsing, so flips are errors.
  EXPECT_EQ(decoded, 0u);
  EXPECT_EQ(failed, 6u * 400u);
}

uint32_t Crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void PutBigEndian32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

// Signature, IHDR of `width` x `height` RGB8 with a valid CRC, and a tiny
// (bogus) IDAT and IEND.
Bytes HugeHeader(uint32_t width, uint32_t height) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                            0,    0,   0,   13,  'I',  'H',  'D',  'R'};
  b.resize(b.size() + 13 + 4);
  PutBigEndian32(&b[16], width);
  PutBigEndian32(&b[20], height);
  b[24] = 8;  // bit depth
  b[25] = 2;  // RGB
  PutBigEndian32(&b[29], Crc32(&b[12], 17));
  const uint8_t kTail[] = {0,    0,    0,    0,    'I',  'D',  'A',  'T',
                           0x35, 0xaf, 0x06, 0x1e, 0,    0,    0,    0,
                           'I',  'E',  'N',  'D',  0xae, 0x42, 0x60, 0x82};
  b.insert(b.end(), std::begin(kTail), std::end(kTail));
  const auto* p = reinterpret_cast<const std::byte*>(b.data());
  return Bytes(p, p + b.size());
}

TEST(PngCodec, HugeHeaderIsRefusedBeforeAllocating) {
  const Bytes bytes = HugeHeader(65535, 65535);
  auto codec = Png();
  g_largest_new = 0;
  auto info = codec->ReadInfo(bytes);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("65535x65535"));
  Bytes out(16);
  EXPECT_EQ(codec->Decode(bytes, {}, out).code(),
            StatusCode::kResourceExhausted);
  EXPECT_LT(g_largest_new.load(), size_t{1} << 20);

  // Within the dimension limit but over the pixel limit.
  EXPECT_EQ(codec->ReadInfo(HugeHeader(60000, 60000)).status().code(),
            StatusCode::kResourceExhausted);

  // With limits that admit it, the header reads (nothing decoded), and the
  // decode stops at the caller's too-small buffer without allocating.
  ImageLimits open;
  open.max_dimension = 65535;
  open.max_pixels = uint64_t{1} << 40;
  auto permissive = Png(open);
  g_largest_new = 0;
  auto big = permissive->ReadInfo(bytes);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->width, 65535u);
  EXPECT_EQ(permissive->Decode(bytes, {}, out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_LT(g_largest_new.load(), size_t{1} << 20);
}

TEST(PngCodec, ConcurrentDecodesAgree) {
  auto codec = Png();
  const Bytes bytes = ReadFile(kSuiteDir + "basi6a16.png");
  auto expected = DecodeAll(*codec, bytes);
  ASSERT_TRUE(expected.ok());
  const Bytes bad = ReadFile(kSuiteDir + "xcsn0g01.png");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto got = DecodeAll(*codec, bytes);
        if (!got.ok() || *got != *expected) ++mismatches;
        if (DecodeAll(*codec, bad).ok()) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace shoal
