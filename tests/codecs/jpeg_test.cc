// Conformance and hostile-input tests of the "jpeg" image codec against
// independent references: libjpeg-turbo's `djpeg -dct int` (committed PPM/PGM
// in tests/data/jpeg/ref, and scaled decodes made at test time by
// /usr/bin/djpeg) and Pillow's CMYK conversion (/usr/bin/python3).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/random.h"
#include "codecs/image_codec.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

const fs::path kData = fs::path(SHOAL_TEST_DATA) / "jpeg";

std::vector<std::byte> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  EXPECT_TRUE(in.good() || in.eof()) << path;
  std::vector<std::byte> bytes(s.size());
  if (!s.empty()) std::memcpy(bytes.data(), s.data(), s.size());
  return bytes;
}

struct Image {
  uint32_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Binary PPM (P6) or PGM (P5), maxval 255, as djpeg writes them.
Image ParsePnm(const std::vector<std::byte>& bytes) {
  std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::istringstream in(s);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  in >> magic >> width >> height >> maxval;
  in.get();  // The single whitespace before the samples.
  Image image;
  EXPECT_TRUE(magic == "P5" || magic == "P6") << magic;
  EXPECT_EQ(maxval, 255);
  image.height = height;
  image.width = width;
  image.channels = magic == "P6" ? 3 : 1;
  const size_t n = size_t{image.height} * image.width * image.channels;
  const size_t offset = static_cast<size_t>(in.tellg());
  EXPECT_EQ(s.size() - offset, n);
  image.pixels.assign(s.begin() + offset, s.begin() + offset + n);
  return image;
}

std::shared_ptr<const ImageCodec> Codec(const ImageLimits& limits = {}) {
  auto codec = MakeImageCodec("jpeg", limits);
  EXPECT_TRUE(codec.ok()) << codec.status().ToString();
  return *codec;
}

// Decodes with `options`; the shape comes from ReadInfo + OutputShape.
Result<Image> Decode(const ImageCodec& codec, const std::vector<std::byte>& b,
                     const ImageDecodeOptions& options = {}) {
  SHOAL_ASSIGN_OR_RETURN(ImageInfo info, codec.ReadInfo(b));
  SHOAL_ASSIGN_OR_RETURN(Shape shape, codec.OutputShape(info, options));
  Image image;
  image.height = shape[0];
  image.width = shape[1];
  image.channels = shape[2];
  image.pixels.resize(shape.num_elements());
  SHOAL_RETURN_IF_ERROR(
      codec.Decode(b, options,
                   {reinterpret_cast<std::byte*>(image.pixels.data()),
                    image.pixels.size()}));
  return image;
}

void ExpectSameImage(const Image& got, const Image& want,
                     const std::string& what) {
  ASSERT_EQ(got.height, want.height) << what;
  ASSERT_EQ(got.width, want.width) << what;
  ASSERT_EQ(got.channels, want.channels) << what;
  size_t diffs = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    diffs += got.pixels[i] != want.pixels[i];
  }
  EXPECT_EQ(diffs, 0u) << what << ": " << diffs << " of " << got.pixels.size()
                       << " samples differ";
}

Image Crop(const Image& image, const ImageRegion& r) {
  Image out;
  out.height = r.height;
  out.width = r.width;
  out.channels = image.channels;
  for (uint32_t y = r.y; y < r.y + r.height; ++y) {
    const uint8_t* row =
        image.pixels.data() + (size_t{y} * image.width + r.x) * image.channels;
    out.pixels.insert(out.pixels.end(), row, row + r.width * image.channels);
  }
  return out;
}

// Runs `command` (through the shell); true on exit status 0.
bool RunCommand(const std::string& command) {
  return std::system(command.c_str()) == 0;
}

fs::path TempPath(const std::string& name) {
  return fs::temp_directory_path() /
         ("shoal_jpeg_test_" + std::to_string(::getpid()) + "_" + name);
}

constexpr const char* kDjpeg = "/usr/bin/djpeg";
constexpr const char* kPython = "/usr/bin/python3";

// The reference decode of `file` by djpeg with extra `args`.
Image Djpeg(const fs::path& file, const std::string& args) {
  const fs::path out = TempPath("djpeg.pnm");
  EXPECT_TRUE(RunCommand(std::string(kDjpeg) + " -dct int " + args +
                         " -outfile " + out.string() + " " + file.string()))
      << file;
  Image image = ParsePnm(ReadFile(out));
  fs::remove(out);
  return image;
}

const std::vector<std::string> kConformance = {
    "testorig.jpg",      "testimgint.jpg",  "testimgari.jpg", "testimgp.jpg",
    "testimgfst100.jpg", "testimgcrop.jpg", "testimggray.jpg"};

TEST(JpegCodecTest, RegisteredAndSniffs) {
  auto codec = Codec();
  EXPECT_EQ(codec->name(), "jpeg");
  const auto bytes = ReadFile(kData / "testorig.jpg");
  EXPECT_TRUE(codec->Sniff(bytes));
  EXPECT_FALSE(codec->Sniff(ByteSpan(bytes).first(2)));
  EXPECT_FALSE(codec->Sniff(AsBytes("\x89PNG\r\n")));
  auto sniffed = SniffImageCodec(bytes);
  ASSERT_TRUE(sniffed.ok());
  EXPECT_EQ((*sniffed)->name(), "jpeg");
}

TEST(JpegCodecTest, ReadInfo) {
  auto codec = Codec();
  auto info = codec->ReadInfo(ReadFile(kData / "testorig.jpg"));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->format, "jpeg");
  EXPECT_EQ(info->height, 149u);
  EXPECT_EQ(info->width, 227u);
  EXPECT_EQ(info->channels, 3);
  EXPECT_EQ(info->colorspace, "ycbcr");
  EXPECT_EQ(info->subsampling, "4:2:0");
  EXPECT_FALSE(info->progressive);
  EXPECT_FALSE(info->arithmetic);
  EXPECT_EQ(info->precision, 8);

  info = codec->ReadInfo(ReadFile(kData / "testimgari.jpg"));
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->arithmetic);
  info = codec->ReadInfo(ReadFile(kData / "testimgp.jpg"));
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->progressive);
  info = codec->ReadInfo(ReadFile(kData / "testimggray.jpg"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->channels, 1);
  EXPECT_EQ(info->colorspace, "gray");
  EXPECT_EQ(info->subsampling, "gray");
  info = codec->ReadInfo(ReadFile(kData / "extra/mozilla-jpg-cmyk-1.jpg"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->channels, 3);
  EXPECT_THAT(info->colorspace, testing::AnyOf("cmyk", "ycck"));
  info = codec->ReadInfo(ReadFile(kData / "extra/restarts.jpg"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subsampling, "4:4:4");
}

TEST(JpegCodecTest, DecodesLikeDjpegDctInt) {
  auto codec = Codec();
  for (const std::string& name : kConformance) {
    const bool gray = name == "testimggray.jpg";
    const Image want =
        ParsePnm(ReadFile(kData / "ref" / (name + (gray ? ".pgm" : ".ppm"))));
    auto got = Decode(*codec, ReadFile(kData / name));
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().ToString();
    ExpectSameImage(*got, want, name);
  }
}

TEST(JpegCodecTest, TwelveBitIsUnimplemented) {
  auto codec = Codec();
  for (const char* name : {"testorig12.jpg", "monkey12.jpg"}) {
    const auto bytes = ReadFile(kData / name);
    auto info = codec->ReadInfo(bytes);
    ASSERT_FALSE(info.ok()) << name;
    EXPECT_EQ(info.status().code(), StatusCode::kUnimplemented) << name;
    EXPECT_THAT(info.status().ToString(), testing::HasSubstr("precision 12"));
    std::vector<std::byte> out(227 * 149 * 3);
    const Status s = codec->Decode(bytes, {}, out);
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.ToString();
  }
}

TEST(JpegCodecTest, ChannelConversions) {
  ASSERT_TRUE(fs::exists(kDjpeg))
      << "needs " << kDjpeg
      << ": run scripts/install-deps.sh (libjpeg-turbo-progs)";
  auto codec = Codec();
  ImageDecodeOptions rgb;
  rgb.channels = ImageDecodeOptions::Channels::kRgb;
  ImageDecodeOptions gray;
  gray.channels = ImageDecodeOptions::Channels::kGray;
  // Gray JPEG as RGB: each sample replicated.
  const Image g = ParsePnm(ReadFile(kData / "ref/testimggray.jpg.pgm"));
  auto got = Decode(*codec, ReadFile(kData / "testimggray.jpg"), rgb);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->channels, 3u);
  ASSERT_EQ(got->pixels.size(), g.pixels.size() * 3);
  for (size_t i = 0; i < g.pixels.size(); ++i) {
    ASSERT_EQ(got->pixels[3 * i], g.pixels[i]);
    ASSERT_EQ(got->pixels[3 * i + 1], g.pixels[i]);
    ASSERT_EQ(got->pixels[3 * i + 2], g.pixels[i]);
  }
  // Color JPEG as gray: libjpeg's own conversion, as `djpeg -grayscale`.
  got = Decode(*codec, ReadFile(kData / "testorig.jpg"), gray);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameImage(*got, Djpeg(kData / "testorig.jpg", "-grayscale -pnm"),
                  "testorig.jpg as gray");
}

TEST(JpegCodecTest, ScaledDecodeMatchesDjpegScale) {
  ASSERT_TRUE(fs::exists(kDjpeg))
      << "needs " << kDjpeg
      << ": run scripts/install-deps.sh (libjpeg-turbo-progs)";
  auto codec = Codec();
  for (const std::string& name :
       {std::string("testorig.jpg"), std::string("testimgp.jpg"),
        std::string("testimggray.jpg"), std::string("testimgcrop.jpg"),
        std::string("extra/restarts.jpg"),
        std::string("extra/mozilla-jpg-size-33x33.jpg")}) {
    for (int n : {1, 2, 3, 4, 5, 6, 7, 8, 12, 16}) {
      ImageDecodeOptions options;
      options.scale_eighths = n;
      auto got = Decode(*codec, ReadFile(kData / name), options);
      ASSERT_TRUE(got.ok())
          << name << " " << n << ": " << got.status().ToString();
      const Image want =
          Djpeg(kData / name, "-scale " + std::to_string(n) + "/8 -pnm");
      ExpectSameImage(*got, want, name + " at " + std::to_string(n) + "/8");
    }
  }
}

TEST(JpegCodecTest, OutputShape) {
  auto codec = Codec();
  auto info = codec->ReadInfo(ReadFile(kData / "testorig.jpg"));
  ASSERT_TRUE(info.ok());
  ImageDecodeOptions options;
  EXPECT_EQ(*codec->OutputShape(*info, options), (Shape{149, 227, 3}));
  options.scale_eighths = 1;  // ceil(149 / 8), ceil(227 / 8)
  EXPECT_EQ(*codec->OutputShape(*info, options), (Shape{19, 29, 3}));
  options.scale_eighths = 3;  // ceil(149 * 3 / 8), ceil(227 * 3 / 8)
  EXPECT_EQ(*codec->OutputShape(*info, options), (Shape{56, 86, 3}));
  options.channels = ImageDecodeOptions::Channels::kGray;
  options.region = ImageRegion{10, 20, 30, 40};
  EXPECT_EQ(*codec->OutputShape(*info, options), (Shape{30, 40, 1}));
  for (const ImageRegion& bad :
       {ImageRegion{0, 0, 0, 5}, ImageRegion{50, 0, 7, 5},
        ImageRegion{0, 80, 5, 7}, ImageRegion{0, 0, 57, 86}}) {
    options.region = bad;
    EXPECT_EQ(codec->OutputShape(*info, options).status().code(),
              StatusCode::kInvalidArgument);
  }
  options.region.reset();
  for (int bad_scale : {0, 17, 255}) {
    options.scale_eighths = bad_scale;
    EXPECT_EQ(codec->OutputShape(*info, options).status().code(),
              StatusCode::kInvalidArgument);
  }
  // Decode() refuses an output of the wrong size.
  std::vector<std::byte> small(100);
  EXPECT_EQ(codec->Decode(ReadFile(kData / "testorig.jpg"), {}, small).code(),
            StatusCode::kInvalidArgument);
}

TEST(JpegCodecTest, RegionEqualsCropOfFullDecode) {
  auto codec = Codec();
  SplitMix64 rng(1234);
  const std::vector<std::string> names = {"testorig.jpg",
                                          "testimgp.jpg",
                                          "testimgari.jpg",
                                          "testimggray.jpg",
                                          "testimgcrop.jpg",
                                          "extra/restarts.jpg",
                                          "extra/non-interleaved-mcu.jpg",
                                          "extra/mozilla-jpg-cmyk-1.jpg",
                                          "extra/mozilla-jpg-size-33x33.jpg"};
  // Also testorig.ppm encoded 4:2:2 (h2v1 fancy upsampling) and 4:2:0.
  std::vector<std::vector<std::byte>> files;
  for (const std::string& name : names) files.push_back(ReadFile(kData / name));
  const Image orig = ParsePnm(ReadFile(kData / "testorig.ppm"));
  for (const char* sub : {"4:2:2", "4:2:0"}) {
    ImageEncodeOptions encode;
    encode.subsampling = sub;
    auto jpeg =
        codec->Encode(Shape{orig.height, orig.width, 3}, DType::kUInt8,
                      {reinterpret_cast<const std::byte*>(orig.pixels.data()),
                       orig.pixels.size()},
                      encode);
    ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
    files.emplace_back(jpeg->span().begin(), jpeg->span().end());
  }
  int checked = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const auto& bytes = files[f];
    const std::string name =
        f < names.size() ? names[f] : "encoded " + std::to_string(f);
    for (int scale : {8, 4, 2, 1, 3, 16}) {
      for (auto channels : {ImageDecodeOptions::Channels::kDefault,
                            ImageDecodeOptions::Channels::kGray,
                            ImageDecodeOptions::Channels::kRgb}) {
        ImageDecodeOptions options;
        options.scale_eighths = scale;
        options.channels = channels;
        auto full = Decode(*codec, bytes, options);
        ASSERT_TRUE(full.ok()) << name << ": " << full.status().ToString();
        for (int i = 0; i < 40; ++i) {
          ImageRegion r;
          r.y = rng.Bounded(full->height);
          r.x = rng.Bounded(full->width);
          r.height = 1 + rng.Bounded(full->height - r.y);
          r.width = 1 + rng.Bounded(full->width - r.x);
          options.region = r;
          auto got = Decode(*codec, bytes, options);
          ASSERT_TRUE(got.ok()) << name << ": " << got.status().ToString();
          ExpectSameImage(*got, Crop(*full, r),
                          name + " scale " + std::to_string(scale) +
                              " region " + std::to_string(r.height) + "x" +
                              std::to_string(r.width) + "+" +
                              std::to_string(r.y) + "+" + std::to_string(r.x));
          if (HasFailure()) return;
          ++checked;
        }
        options.region.reset();
      }
    }
  }
  EXPECT_GT(checked, 7500);
}

// Files libjpeg-turbo rejects, or only warns about (which shoal treats as
// Corruption, see jpeg_codec.cc); multiple-0xff-before-eoi.jpg is legal.
TEST(JpegCodecTest, CorruptFilesGiveErrors) {
  auto codec = Codec();
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kData / "corrupt")) {
    if (entry.path().extension() != ".jpg") continue;
    ++files;
    const std::string name = entry.path().filename().string();
    auto got = Decode(*codec, ReadFile(entry.path()));
    if (name == "multiple-0xff-before-eoi.jpg") {
      EXPECT_TRUE(got.ok()) << name << ": " << got.status().ToString();
      continue;
    }
    ASSERT_FALSE(got.ok()) << name;
    const StatusCode code = got.status().code();
    if (name == "max_size.jpg") {
      EXPECT_EQ(code, StatusCode::kResourceExhausted) << name;
    } else if (name == "invalid-prediction-shift.jpg") {  // SOF3 lossless
      EXPECT_EQ(code, StatusCode::kUnimplemented) << name;
    } else {
      EXPECT_EQ(code, StatusCode::kCorruption)
          << name << ": " << got.status().ToString();
    }
  }
  EXPECT_EQ(files, 15);
}

// Check() (a 1/8-scale decode) must fail exactly when a full decode fails:
// on every conformance file, good or corrupt, and on damaged copies of the
// baseline, progressive and arithmetic-coded test images (truncated at many
// points; bytes of the entropy-coded data flipped at many places).
TEST(JpegCodecTest, CheckFailsExactlyWhenAFullDecodeFails) {
  auto codec = Codec();
  std::vector<std::byte> scratch;
  int compared = 0, failing = 0;
  auto compare = [&](const std::vector<std::byte>& bytes,
                     const std::string& what) {
    const Status full = Decode(*codec, bytes).status();
    const Status check = codec->Check(bytes, scratch);
    EXPECT_EQ(full.ok(), check.ok())
        << what << ": full decode " << full << ", check " << check;
    if (!full.ok() && !check.ok()) {
      EXPECT_EQ(full.code(), check.code()) << what;
    }
    ++compared;
    failing += !full.ok();
  };
  for (const char* dir : {"", "corrupt", "extra"}) {
    for (const auto& entry : fs::directory_iterator(kData / dir)) {
      if (entry.path().extension() != ".jpg") continue;
      compare(ReadFile(entry.path()), entry.path().string());
    }
  }
  for (const char* name : {"testorig.jpg", "testimgp.jpg", "testimgari.jpg"}) {
    const std::vector<std::byte> good = ReadFile(kData / name);
    for (size_t k = 1; k <= 40; ++k) {
      std::vector<std::byte> cut(good.begin(),
                                 good.begin() + good.size() * k / 41);
      compare(cut, std::string(name) + " cut at " + std::to_string(cut.size()));
    }
    // The entropy-coded data starts after the first SOS segment.
    size_t sos = 0;
    for (size_t i = 0; i + 3 < good.size(); ++i) {
      if (good[i] == std::byte{0xFF} && good[i + 1] == std::byte{0xDA}) {
        sos = i + 2 + ((size_t(good[i + 2]) << 8) | size_t(good[i + 3]));
        break;
      }
    }
    ASSERT_GT(sos, 0u) << name;
    for (size_t k = 0; k < 150; ++k) {
      std::vector<std::byte> bad = good;
      const size_t at = sos + (good.size() - sos - 2) * k / 150;
      bad[at] ^= std::byte{static_cast<unsigned char>(0x5A + k)};
      compare(bad, std::string(name) + " byte " + std::to_string(at));
    }
  }
  EXPECT_GT(compared, 600);
  EXPECT_GT(failing, 100);  // the damage is found, not only tolerated
}

TEST(JpegCodecTest, ExtraFilesDecode) {
  auto codec = Codec();
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kData / "extra")) {
    if (entry.path().extension() != ".jpg") continue;
    ++files;
    const auto bytes = ReadFile(entry.path());
    auto got = Decode(*codec, bytes);
    ASSERT_TRUE(got.ok()) << entry.path().filename() << ": "
                          << got.status().ToString();
    EXPECT_GT(got->pixels.size(), 0u);
    if (fs::exists(kDjpeg) &&
        entry.path().filename() != "mozilla-jpg-cmyk-1.jpg") {
      const bool gray = got->channels == 1;
      ExpectSameImage(*got,
                      Djpeg(entry.path(), gray ? "-grayscale -pnm" : "-pnm"),
                      entry.path().filename().string());
    }
  }
  EXPECT_EQ(files, 10);
}

TEST(JpegCodecTest, CmykMatchesPillow) {
  ASSERT_TRUE(fs::exists(kPython) &&
              RunCommand(std::string(kPython) + " -c 'import PIL' 2>/dev/null"))
      << "needs python3-pil: run scripts/install-deps.sh";
  const fs::path file = kData / "extra/mozilla-jpg-cmyk-1.jpg";
  const fs::path out = TempPath("pil.ppm");
  ASSERT_TRUE(RunCommand(
      std::string(kPython) +
      " -c 'import sys; from PIL import Image; "
      "Image.open(sys.argv[1]).convert(\"RGB\").save(sys.argv[2])' " +
      file.string() + " " + out.string()));
  const Image want = ParsePnm(ReadFile(out));
  fs::remove(out);
  auto codec = Codec();
  auto got = Decode(*codec, ReadFile(file));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameImage(*got, want, "CMYK vs Pillow convert('RGB')");
  // As gray: that RGB through libjpeg's rgb->gray weights (jdcolor.c).
  ImageDecodeOptions gray;
  gray.channels = ImageDecodeOptions::Channels::kGray;
  got = Decode(*codec, ReadFile(file), gray);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  Image want_gray{want.height, want.width, 1, {}};
  for (size_t i = 0; i < want.pixels.size(); i += 3) {
    want_gray.pixels.push_back(static_cast<uint8_t>(
        (19595 * want.pixels[i] + 38470 * want.pixels[i + 1] +
         7471 * want.pixels[i + 2] + 32768) >>
        16));
  }
  ExpectSameImage(*got, want_gray, "CMYK as gray");
}

double Psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    se += d * d;
  }
  return 10 * std::log10(255.0 * 255.0 / (se / a.size()));
}

TEST(JpegCodecTest, EncodeRoundTrip) {
  auto codec = Codec();
  const Image orig = ParsePnm(ReadFile(kData / "testorig.ppm"));
  const Shape shape{orig.height, orig.width, 3};
  const ByteSpan pixels{reinterpret_cast<const std::byte*>(orig.pixels.data()),
                        orig.pixels.size()};
  for (const std::string sub : {"4:4:4", "4:2:2", "4:2:0", "gray"}) {
    ImageEncodeOptions options;
    options.quality = 95;
    options.subsampling = sub;
    auto jpeg = codec->Encode(shape, DType::kUInt8, pixels, options);
    ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
    std::vector<std::byte> bytes(jpeg->span().begin(), jpeg->span().end());
    auto info = codec->ReadInfo(bytes);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->subsampling, sub);
    EXPECT_EQ(info->channels, sub == "gray" ? 1 : 3);
    auto got = Decode(*codec, bytes);
    ASSERT_TRUE(got.ok());
    if (sub == "gray") continue;
    EXPECT_GT(Psnr(got->pixels, orig.pixels), 40.0) << sub;
  }
  // One gray channel in gives a gray JPEG out, whatever the subsampling.
  std::vector<uint8_t> gray(orig.pixels.size() / 3);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = orig.pixels[3 * i + 1];
  auto jpeg = codec->Encode(
      Shape{orig.height, orig.width, 1}, DType::kUInt8,
      {reinterpret_cast<const std::byte*>(gray.data()), gray.size()}, {});
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
  std::vector<std::byte> bytes(jpeg->span().begin(), jpeg->span().end());
  auto got = Decode(*codec, bytes);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->channels, 1u);
  EXPECT_GT(Psnr(got->pixels, gray), 35.0);

  ImageEncodeOptions bad;
  bad.quality = 0;
  EXPECT_FALSE(codec->Encode(shape, DType::kUInt8, pixels, bad).ok());
  bad.quality = 90;
  bad.subsampling = "4:1:0";
  EXPECT_FALSE(codec->Encode(shape, DType::kUInt8, pixels, bad).ok());
  EXPECT_FALSE(
      codec
          ->Encode(Shape{orig.height, orig.width, 4}, DType::kUInt8, pixels, {})
          .ok());
  EXPECT_FALSE(codec->Encode(shape, DType::kUInt16, pixels, {}).ok());
  EXPECT_FALSE(codec->Encode(shape, DType::kUInt8, pixels.first(100), {}).ok());
}

// A baseline SOF0 of testorig.jpg rewritten to claim `height` x `width`.
std::vector<std::byte> WithSize(std::vector<std::byte> bytes, uint16_t height,
                                uint16_t width) {
  for (size_t i = 0; i + 8 < bytes.size(); ++i) {
    if (bytes[i] == std::byte{0xFF} && bytes[i + 1] == std::byte{0xC0}) {
      bytes[i + 5] = std::byte(height >> 8);
      bytes[i + 6] = std::byte(height & 0xFF);
      bytes[i + 7] = std::byte(width >> 8);
      bytes[i + 8] = std::byte(width & 0xFF);
      return bytes;
    }
  }
  ADD_FAILURE() << "no SOF0";
  return bytes;
}

TEST(JpegCodecTest, LimitsAreCheckedOnTheHeader) {
  const auto bytes = ReadFile(kData / "testorig.jpg");
  ImageLimits limits;
  limits.max_dimension = 200;
  EXPECT_EQ(Codec(limits)->ReadInfo(bytes).status().code(),
            StatusCode::kResourceExhausted);
  limits.max_dimension = 1000;
  limits.max_pixels = 10000;
  EXPECT_EQ(Codec(limits)->ReadInfo(bytes).status().code(),
            StatusCode::kResourceExhausted);
  std::vector<std::byte> out(149 * 227 * 3);
  EXPECT_EQ(Codec(limits)->Decode(bytes, {}, out).code(),
            StatusCode::kResourceExhausted);
  const auto huge = WithSize(bytes, 65535, 65535);
  EXPECT_EQ(Codec()->ReadInfo(huge).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(Codec()->Decode(huge, {}, out).code(),
            StatusCode::kResourceExhausted);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHOAL_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHOAL_UNDER_SANITIZER 1
#endif
#endif

// Not built under ASan or TSan: their shadow memory needs far more address
// space than the limit this test sets. The plain build (make test) runs it.
#ifndef SHOAL_UNDER_SANITIZER
// Headers that lie about the size must not make libjpeg allocate by them: in
// a child process whose address space may grow by only 256 MiB, decoding
// files claiming up to 65500x65500 fails cleanly instead of running out.
TEST(JpegCodecTest, LyingHeadersAllocateLittle) {
  const auto bytes = ReadFile(kData / "testorig.jpg");
  const auto progressive = ReadFile(kData / "testimgp.jpg");
  auto codec = Codec();  // Registered and created before the limit.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0;
    statm >> pages;
    const rlim_t cap = pages * sysconf(_SC_PAGESIZE) + (256ull << 20);
    rlimit limit{cap, cap};
    setrlimit(RLIMIT_AS, &limit);
    int bad = 0;
    std::vector<std::byte> out(1 << 20);
    for (const auto& file : {bytes, progressive}) {
      for (const auto& [h, w] : std::vector<std::pair<int, int>>{
               {65535, 65535}, {65500, 65500}, {16000, 16000}, {10000, 5}}) {
        auto lying = file;
        // testimgp.jpg has a SOF2 header; patch it through SOF0's layout.
        for (size_t i = 0; i + 8 < lying.size(); ++i) {
          if (lying[i] == std::byte{0xFF} &&
              (lying[i + 1] == std::byte{0xC0} ||
               lying[i + 1] == std::byte{0xC2})) {
            lying[i + 5] = std::byte(h >> 8);
            lying[i + 6] = std::byte(h & 0xFF);
            lying[i + 7] = std::byte(w >> 8);
            lying[i + 8] = std::byte(w & 0xFF);
            break;
          }
        }
        // `out` is too small, so Decode must fail either on the size check
        // or on the header; ReadInfo either way must not allocate.
        if (codec->ReadInfo(lying).ok() && uint64_t(h) * w > (1ull << 28)) {
          ++bad;
        }
        if (codec->Decode(lying, {}, out).ok()) ++bad;
        ImageDecodeOptions region;
        region.region = ImageRegion{0, 0, 1, 1};
        std::vector<std::byte> one(3);
        (void)codec->Decode(lying, region, one);  // Must just not crash.
      }
    }
    _exit(bad);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died by signal";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
#endif  // SHOAL_UNDER_SANITIZER

TEST(JpegCodecTest, TruncationsAndBitFlipsGiveErrorsNotCrashes) {
  auto codec = Codec();
  for (const char* name : {"testorig.jpg", "testimgp.jpg", "testimgari.jpg"}) {
    const auto bytes = ReadFile(kData / name);
    // Every truncation short of the end drops at least the EOI marker, which
    // libjpeg reports as "premature end": an error, never a decoded image.
    int errors = 0;
    for (size_t len = 0; len + 2 <= bytes.size(); len += 3) {
      std::vector<std::byte> cut(bytes.begin(), bytes.begin() + len);
      auto got = Decode(*codec, cut);
      if (!got.ok()) ++errors;
      EXPECT_FALSE(got.ok()) << name << " cut at " << len;
    }
    EXPECT_GT(errors, 100);
    SplitMix64 rng(99);
    int failed = 0;
    for (int i = 0; i < 1500; ++i) {
      auto flipped = bytes;
      for (int k = 0; k < 1 + i % 4; ++k) {
        flipped[rng.Bounded(flipped.size())] ^=
            std::byte(1 << (rng.Bounded(8)));
      }
      auto got = Decode(*codec, flipped);
      failed += !got.ok();
      ImageDecodeOptions options;
      options.scale_eighths = 1 + rng.Bounded(16);
      options.region = ImageRegion{0, 0, 1, 1};
      (void)Decode(*codec, flipped, options);
    }
    EXPECT_GT(failed, 0) << name;
  }
}

TEST(JpegCodecTest, ConcurrentDecodesAgree) {
  auto codec = Codec();
  std::vector<std::vector<std::byte>> files;
  std::vector<Image> want;
  for (const std::string& name : kConformance) {
    files.push_back(ReadFile(kData / name));
    auto image = Decode(*codec, files.back());
    ASSERT_TRUE(image.ok());
    want.push_back(*image);
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const size_t f = (i + t) % files.size();
        auto got = Decode(*codec, files[f]);
        if (!got.ok() || got->pixels != want[f].pixels) ++mismatches;
        // An error on this thread must leave its decompressor usable.
        (void)Decode(*codec, std::vector<std::byte>(files[f].begin(),
                                                    files[f].begin() + 300));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace shoal
