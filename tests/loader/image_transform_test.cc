// Tests of the loader's image transforms against independent references:
// - crop geometry against a plain re-implementation (below, sharing no code)
//   of torchvision's RandomResizedCrop.get_params with the SplitMix64
//   generator documented in base/random.h;
// - pixels against Pillow (/usr/bin/python3): the codec's full decode, then
//   PIL crop, Image.resize(BILINEAR) and numpy fliplr, i.e. what
//   torchvision does to a PIL image; PNG color conversions against PIL's
//   convert("RGB"/"L");
// - the DCT-scaled JPEG path against the full-resolution one (PSNR);
// - the AVX2 resampler against the portable one, bit for bit.
#include "loader/image_transform.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "base/random.h"
#include "codecs/image_codec.h"
#include "loader/internal/resize.h"

// Counts this thread's operator new calls, for the steady-state allocation
// test. Replacing the global operator new is the only portable hook; GCC
// then sees malloc'd memory reach free() through inlined deletes and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
thread_local int64_t allocations = 0;
}  // namespace

void* operator new(size_t size) {
  ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace shoal {
namespace {

namespace fs = std::filesystem;
using Channels = ImageDecodeOptions::Channels;
using Kind = ImageTransform::Kind;

const fs::path kData = SHOAL_TEST_DATA;
constexpr const char* kPython = "/usr/bin/python3";

struct Image {
  uint32_t height = 0, width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;

  MutableByteSpan span() {
    return {reinterpret_cast<std::byte*>(pixels.data()), pixels.size()};
  }
};

std::vector<std::byte> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  EXPECT_FALSE(s.empty()) << path;
  std::vector<std::byte> bytes(s.size());
  if (!s.empty()) std::memcpy(bytes.data(), s.data(), s.size());
  return bytes;
}

std::shared_ptr<const ImageCodec> Codec(std::string_view name) {
  auto codec = MakeImageCodec(name);
  EXPECT_TRUE(codec.ok()) << codec.status().ToString();
  return *codec;
}

fs::path TempPath(const std::string& name) {
  return fs::temp_directory_path() /
         ("shoal_transform_test_" + std::to_string(::getpid()) + "_" + name);
}

bool RunCommand(const std::string& command) {
  return std::system(command.c_str()) == 0;
}

// testorig.ppm, the IJG test photograph (227x149).
Image ReadPpm(const fs::path& path) {
  const auto bytes = ReadFile(path);
  std::istringstream in(
      std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  std::string magic;
  int maxval = 0;
  Image image;
  in >> magic >> image.width >> image.height >> maxval;
  in.get();
  image.channels = 3;
  image.pixels.resize(size_t{image.height} * image.width * 3);
  in.read(reinterpret_cast<char*>(image.pixels.data()), image.pixels.size());
  EXPECT_TRUE(magic == "P6" && maxval == 255 && in) << path;
  return image;
}

// A photo-like test image of any size: testorig.ppm stretched bilinearly
// (mirrored past its edges), plus a little deterministic noise so that the
// JPEG has detail at every scale.
Image Photo(uint32_t height, uint32_t width) {
  static const Image src = ReadPpm(kData / "jpeg/testorig.ppm");
  Image out{height, width, 3, std::vector<uint8_t>(size_t{height} * width * 3)};
  const double sy = 0.6 * src.height / height, sx = 0.6 * src.width / width;
  auto mirror = [](int v, int n) {
    v %= 2 * n;
    return v < n ? v : 2 * n - 1 - v;
  };
  uint32_t noise = 12345;
  for (uint32_t y = 0; y < height; ++y) {
    const double fy = y * sy + 20;
    const int y0 = static_cast<int>(fy);
    const double wy = fy - y0;
    for (uint32_t x = 0; x < width; ++x) {
      const double fx = x * sx + 30;
      const int x0 = static_cast<int>(fx);
      const double wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int yy, int xx) {
          return double(src.pixels[(size_t(mirror(yy, src.height)) * src.width +
                                    mirror(xx, src.width)) *
                                       3 +
                                   c]);
        };
        const double v =
            (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)) +
            wy * ((1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1));
        noise = noise * 1103515245 + 12345;
        const int n = static_cast<int>((noise >> 16) % 7) - 3;
        out.pixels[(size_t{y} * width + x) * 3 + c] = static_cast<uint8_t>(
            std::clamp(static_cast<int>(std::lround(v)) + n, 0, 255));
      }
    }
  }
  return out;
}

std::vector<std::byte> EncodeJpeg(const Image& image, int quality = 90,
                                  const std::string& subsampling = "4:2:0") {
  ImageEncodeOptions options;
  options.quality = quality;
  options.subsampling = subsampling;
  auto jpeg = Codec("jpeg")->Encode(
      Shape{image.height, image.width, uint64_t(image.channels)}, DType::kUInt8,
      {reinterpret_cast<const std::byte*>(image.pixels.data()),
       image.pixels.size()},
      options);
  EXPECT_TRUE(jpeg.ok()) << jpeg.status().ToString();
  return {jpeg->span().begin(), jpeg->span().end()};
}

// 500x400 q90 4:2:0, the benchmark's kind of image.
const std::vector<std::byte>& PhotoJpeg() {
  static const auto jpeg = EncodeJpeg(Photo(400, 500));
  return jpeg;
}
// Odd sizes, 4:4:4, larger: DCT scales down to 1/8 and edge MCUs.
const std::vector<std::byte>& LargeJpeg() {
  static const auto jpeg = EncodeJpeg(Photo(1037, 901), 92, "4:4:4");
  return jpeg;
}

Image Decode(const ImageCodec& codec, const std::vector<std::byte>& bytes,
             Channels channels = Channels::kDefault) {
  ImageDecodeOptions options;
  options.channels = channels;
  auto info = codec.ReadInfo(bytes);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  auto shape = codec.OutputShape(*info, options);
  EXPECT_TRUE(shape.ok()) << shape.status().ToString();
  Image image{uint32_t((*shape)[0]), uint32_t((*shape)[1]), int((*shape)[2]),
              std::vector<uint8_t>(shape->num_elements())};
  EXPECT_TRUE(codec.Decode(bytes, options, image.span()).ok());
  return image;
}

Result<Image> Transform(const ImageCodec& codec,
                        const std::vector<std::byte>& bytes,
                        const ImageTransform& transform, uint64_t seed,
                        ImageTransformStats* stats = nullptr) {
  SHOAL_ASSIGN_OR_RETURN(const ImageInfo info, codec.ReadInfo(bytes));
  SHOAL_ASSIGN_OR_RETURN(const Shape shape,
                         ImageTransformShape(transform, info));
  Image out{uint32_t(shape[0]), uint32_t(shape[1]), int(shape[2]),
            std::vector<uint8_t>(shape.num_elements())};
  ImageTransformer transformer;
  SHOAL_RETURN_IF_ERROR(
      transformer.Apply(codec, bytes, transform, seed, out.span(), stats));
  return out;
}

struct Diff {
  int max = 0;
  size_t count = 0;
  double psnr = 0;
};

Diff Compare(const Image& a, const Image& b) {
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.channels, b.channels);
  Diff d;
  if (a.pixels.size() != b.pixels.size()) return Diff{255, 1, 0};
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int e = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    d.max = std::max(d.max, e);
    d.count += e != 0;
    se += double(e) * e;
  }
  d.psnr = se == 0 ? 99 : 10 * std::log10(255.0 * 255 * a.pixels.size() / se);
  return d;
}

std::string Describe(const ImageRegion& r) {
  return std::to_string(r.height) + "x" + std::to_string(r.width) + "+" +
         std::to_string(r.y) + "+" + std::to_string(r.x);
}

// ---------------------------------------------------------------------------
// Pillow, one python process per batch of jobs.

constexpr const char* kPillowScript = R"(
import sys
import numpy as np
from PIL import Image
for line in open(sys.argv[1]):
    f = line.split()
    h, w, c, y, x, bh, bw, oh, ow, flip = map(int, f[1:11])
    a = np.fromfile(f[0], np.uint8).reshape(h, w, c)[y:y + bh, x:x + bw]
    im = Image.fromarray(np.ascontiguousarray(a[:, :, 0] if c == 1 else a))
    if (bh, bw) != (oh, ow):
        im = im.resize((ow, oh), Image.BILINEAR)
    r = np.asarray(im).reshape(oh, ow, c)
    if flip:
        r = np.fliplr(r)
    np.ascontiguousarray(r).tofile(f[11])
)";

struct PillowJob {
  const Image* source;
  ImageRegion box;
  uint32_t height, width;
  bool flip;
};

bool HavePillow() {
  return fs::exists(kPython) &&
         RunCommand(std::string(kPython) +
                    " -c 'import numpy, PIL' 2>/dev/null");
}

// Crop `box` of each source, resize to height x width with
// PIL.Image.resize(BILINEAR) (skipped when the size is unchanged, as
// torchvision's Resize does not skip but PIL returns a copy), fliplr.
std::vector<Image> Pillow(const std::vector<PillowJob>& jobs) {
  const fs::path script = TempPath("pillow.py");
  const fs::path list = TempPath("jobs.txt");
  std::ofstream(script) << kPillowScript;
  std::vector<fs::path> inputs;
  std::ofstream lines(list);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const PillowJob& j = jobs[i];
    const Image& s = *j.source;
    const fs::path in = TempPath("in" + std::to_string(i));
    std::ofstream(in, std::ios::binary)
        .write(reinterpret_cast<const char*>(s.pixels.data()), s.pixels.size());
    inputs.push_back(in);
    lines << in.string() << ' ' << s.height << ' ' << s.width << ' '
          << s.channels << ' ' << j.box.y << ' ' << j.box.x << ' '
          << j.box.height << ' ' << j.box.width << ' ' << j.height << ' '
          << j.width << ' ' << int(j.flip) << ' '
          << TempPath("out" + std::to_string(i)).string() << '\n';
  }
  lines.close();
  EXPECT_TRUE(RunCommand(std::string(kPython) + " " + script.string() + " " +
                         list.string()));
  std::vector<Image> out;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const fs::path path = TempPath("out" + std::to_string(i));
    Image image{jobs[i].height, jobs[i].width, jobs[i].source->channels, {}};
    image.pixels.resize(size_t{image.height} * image.width * image.channels);
    std::ifstream(path, std::ios::binary)
        .read(reinterpret_cast<char*>(image.pixels.data()),
              image.pixels.size());
    out.push_back(std::move(image));
    fs::remove(path);
    fs::remove(inputs[i]);
  }
  fs::remove(script);
  fs::remove(list);
  return out;
}

// A PNG decoded and converted by PIL: Image.open(f).convert(mode).
Image PillowConvert(const fs::path& png, const std::string& mode) {
  const fs::path out = TempPath("convert.raw");
  const std::string cmd =
      std::string(kPython) +
      " -c 'import sys, numpy as np; from PIL import Image; "
      "im = Image.open(sys.argv[1]).convert(sys.argv[2]); "
      "np.asarray(im).tofile(sys.argv[3]); print(im.size[1], im.size[0])' " +
      png.string() + " " + mode + " " + out.string() + " > " + out.string() +
      ".size";
  EXPECT_TRUE(RunCommand(cmd)) << cmd;
  Image image;
  std::ifstream(out.string() + ".size") >> image.height >> image.width;
  image.channels = mode == "RGB" ? 3 : 1;
  image.pixels.resize(size_t{image.height} * image.width * image.channels);
  std::ifstream(out, std::ios::binary)
      .read(reinterpret_cast<char*>(image.pixels.data()), image.pixels.size());
  fs::remove(out);
  fs::remove(out.string() + ".size");
  return image;
}

// ---------------------------------------------------------------------------
// Reference crop sampling: torchvision's get_params and the documented
// generator, transcribed directly.

struct RefGenerator {
  uint64_t state;
  uint64_t Next() {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z;
  }
  double Uniform(double from, double to) {
    return from + (to - from) * std::ldexp(double(Next() >> 11), -53);
  }
  int64_t RandInt(int64_t low, int64_t high) {  // [low, high)
    const uint64_t range = uint64_t(high - low);
    const uint64_t reject_below = (~range + 1) % range;  // (2^64 - r) mod r
    unsigned __int128 wide;
    do {
      wide = static_cast<unsigned __int128>(Next()) * range;
    } while (uint64_t(wide) < reject_below);
    return low + int64_t(wide >> 64);
  }
};

// Python's round(); the default FPU mode rounds half to even.
double PyRound(double x) { return std::nearbyint(x); }

struct RefCrop {
  int64_t i, j, h, w;
  bool fallback = false;
  bool flip = false;
};

RefCrop RefRandomResizedCrop(int64_t height, int64_t width,
                             const ImageTransform& t, uint64_t seed) {
  RefGenerator g{seed};
  const double area = double(height) * double(width);
  const double log_ratio[2] = {std::log(t.ratio_min), std::log(t.ratio_max)};
  RefCrop c{};
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target_area = area * g.Uniform(t.scale_min, t.scale_max);
    const double aspect_ratio = std::exp(g.Uniform(log_ratio[0], log_ratio[1]));
    const int64_t w = int64_t(PyRound(std::sqrt(target_area * aspect_ratio)));
    const int64_t h = int64_t(PyRound(std::sqrt(target_area / aspect_ratio)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t i = g.RandInt(0, height - h + 1);
      const int64_t j = g.RandInt(0, width - w + 1);
      c = RefCrop{i, j, h, w};
      found = true;
    }
  }
  if (!found) {
    const double in_ratio = double(width) / double(height);
    int64_t w, h;
    if (in_ratio < t.ratio_min) {
      w = width;
      h = int64_t(PyRound(w / t.ratio_min));
    } else if (in_ratio > t.ratio_max) {
      h = height;
      w = int64_t(PyRound(h * t.ratio_max));
    } else {
      w = width;
      h = height;
    }
    c = RefCrop{(height - h) / 2, (width - w) / 2, h, w, true};
  }
  if (t.random_flip) c.flip = g.Uniform(0, 1) < 0.5;
  return c;
}

// ---------------------------------------------------------------------------
// Crop planning.

TEST(PlanImageCropTest, RandomResizedCropMatchesTorchvisionSampling) {
  ImageTransform t = ImageTransform::Train(224);
  const std::vector<std::pair<uint32_t, uint32_t>> sizes = {
      {400, 500}, {375, 500},   {500, 333}, {1, 1},     {7, 3},
      {224, 224}, {1080, 1920}, {20, 1000}, {1000, 20}, {65500, 2}};
  const std::vector<std::tuple<double, double, double, double>> params = {
      {0.08, 1.0, 3.0 / 4, 4.0 / 3},
      {0.5, 0.5, 1.0, 1.0},
      {0.25, 1.0, 0.1, 10},
      {1.0, 1.0, 3.0 / 4, 4.0 / 3}};
  int fallbacks = 0, checked = 0;
  for (const auto& [smin, smax, rmin, rmax] : params) {
    t.scale_min = smin;
    t.scale_max = smax;
    t.ratio_min = rmin;
    t.ratio_max = rmax;
    ASSERT_TRUE(ValidateImageTransform(t).ok());
    for (const auto& [height, width] : sizes) {
      for (uint64_t seed = 0; seed < 300; ++seed) {
        const uint64_t s = seed * 0x1234567 + height;
        const ImageCrop got = PlanImageCrop(t, height, width, s);
        const RefCrop want = RefRandomResizedCrop(height, width, t, s);
        const ImageRegion& b = got.box;
        ASSERT_EQ(std::make_tuple(int64_t(b.y), int64_t(b.x), int64_t(b.height),
                                  int64_t(b.width), got.flip),
                  std::make_tuple(want.i, want.j, want.h, want.w, want.flip))
            << height << "x" << width << " seed " << s;
        ASSERT_GE(b.height, 1u);
        ASSERT_GE(b.width, 1u);
        ASSERT_LE(uint64_t{b.y} + b.height, height);
        ASSERT_LE(uint64_t{b.x} + b.width, width);
        ++checked;
        if (want.fallback) {
          ++fallbacks;
          continue;
        }
        // Area fraction and aspect ratio within bounds, up to the rounding
        // of each side to whole pixels.
        const double area = double(height) * width;
        EXPECT_GE((b.height + 0.5) * (b.width + 0.5), smin * area);
        EXPECT_LE((b.height - 0.5) * (b.width - 0.5), smax * area);
        EXPECT_GE((b.width + 0.5) / (b.height - 0.5), rmin);
        EXPECT_LE((b.width - 0.5) / (b.height + 0.5), rmax);
      }
    }
  }
  EXPECT_EQ(checked, 4 * 10 * 300);
  // The thin images cannot fit the default ratios: both paths were taken.
  EXPECT_GT(fallbacks, 600);
  EXPECT_LT(fallbacks, checked / 2);
}

// torchvision RandomCrop.get_params, transcribed.
RefCrop RefRandomCrop(int64_t height, int64_t width, const ImageTransform& t,
                      uint64_t seed) {
  RefGenerator g{seed};
  const int64_t th = t.height, tw = t.width;
  RefCrop c{0, 0, height, width};
  if (height != th || width != tw) {
    c.i = g.RandInt(0, height - th + 1);
    c.j = g.RandInt(0, width - tw + 1);
    c.h = th;
    c.w = tw;
  }
  if (t.random_flip) c.flip = g.Uniform(0, 1) < 0.5;
  return c;
}

TEST(PlanImageCropTest, RandomCropMatchesTorchvisionSampling) {
  ImageTransform t;
  t.kind = Kind::kRandomCrop;
  t.height = 224;
  t.width = 160;
  t.random_flip = true;
  ASSERT_TRUE(ValidateImageTransform(t).ok());
  const std::vector<std::pair<uint32_t, uint32_t>> sizes = {
      {224, 160}, {225, 160}, {224, 161}, {400, 500}, {2988, 5312}};
  std::set<std::pair<uint32_t, uint32_t>> corners;
  int flips = 0;
  for (const auto& [height, width] : sizes) {
    for (uint64_t seed = 0; seed < 400; ++seed) {
      const uint64_t s = seed * 0x9876543 + width;
      const ImageCrop got = PlanImageCrop(t, height, width, s);
      const RefCrop want = RefRandomCrop(height, width, t, s);
      const ImageRegion& b = got.box;
      ASSERT_EQ(std::make_tuple(int64_t(b.y), int64_t(b.x), int64_t(b.height),
                                int64_t(b.width), got.flip),
                std::make_tuple(want.i, want.j, want.h, want.w, want.flip))
          << height << "x" << width << " seed " << s;
      ASSERT_LE(uint64_t{b.y} + b.height, height);
      ASSERT_LE(uint64_t{b.x} + b.width, width);
      if (height == 225 || width == 161) corners.insert({b.y, b.x});
      flips += got.flip;
    }
  }
  // One pixel of room down or across: both places are drawn.
  EXPECT_EQ(corners,
            (std::set<std::pair<uint32_t, uint32_t>>{{0, 0}, {1, 0}, {0, 1}}));
  EXPECT_GT(flips, 800);
  EXPECT_LT(flips, 1200);

  // torchvision refuses an image smaller than the crop; so do the shapes.
  ImageInfo small;
  small.height = 223;
  small.width = 500;
  small.channels = 3;
  const auto shape = ImageTransformShape(t, small);
  EXPECT_EQ(shape.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(shape.status().message().find("223x500"), std::string::npos)
      << shape.status();
  small.height = 224;
  small.width = 160;
  EXPECT_EQ(*ImageTransformShape(t, small), (Shape{224, 160, 3}));
}

TEST(PlanImageCropTest, FallbackIsCenteredWithClampedRatio) {
  const ImageTransform t = ImageTransform::Train(224);
  // Too wide for 4:3: full height, width round(20 * 4/3) = 27, centered.
  ImageCrop c = PlanImageCrop(t, 20, 1000, 7);
  EXPECT_EQ(Describe(c.box), Describe(ImageRegion{0, 486, 20, 27}));
  // Too tall: full width, height round(20 / (3/4)) = 27.
  c = PlanImageCrop(t, 1000, 20, 7);
  EXPECT_EQ(Describe(c.box), Describe(ImageRegion{486, 0, 27, 20}));
}

TEST(PlanImageCropTest, DeterministicAndVaried) {
  const ImageTransform t = ImageTransform::Train(224);
  std::set<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>> boxes;
  int flips = 0;
  const int n = 4000;
  ImageTransform no_flip = t;
  no_flip.random_flip = false;
  for (int seed = 0; seed < n; ++seed) {
    const ImageCrop a = PlanImageCrop(t, 400, 500, seed);
    const ImageCrop b = PlanImageCrop(t, 400, 500, seed);
    ASSERT_EQ(Describe(a.box), Describe(b.box));
    ASSERT_EQ(a.flip, b.flip);
    // The flip is drawn after the crop: turning it off keeps the crop.
    ASSERT_EQ(Describe(PlanImageCrop(no_flip, 400, 500, seed).box),
              Describe(a.box));
    EXPECT_FALSE(PlanImageCrop(no_flip, 400, 500, seed).flip);
    boxes.insert({a.box.y, a.box.x, a.box.height, a.box.width});
    flips += a.flip;
  }
  EXPECT_GT(boxes.size(), size_t(n * 0.99));
  // Binomial(4000, 1/2): 6 standard deviations either side.
  EXPECT_NEAR(flips, n / 2, 6 * std::sqrt(n / 4.0));
}

TEST(PlanImageCropTest, CenterCrop) {
  const ImageTransform eval = ImageTransform::Eval(224);
  EXPECT_EQ(eval.resize_shorter, 256u);
  EXPECT_EQ(ImageTransform::Eval(299).resize_shorter, 342u);  // Inception
  // 375x500 to shorter side 256: f = 256/375, 224/f = 328.1 -> 328x328;
  // offsets round(47/2) = 24 (half to even), round(172/2) = 86.
  ImageCrop c = PlanImageCrop(eval, 375, 500, 1);
  EXPECT_EQ(Describe(c.box), Describe(ImageRegion{24, 86, 328, 328}));
  EXPECT_FALSE(c.flip);
  // Cover: the largest centered box of the output's aspect.
  ImageTransform cover;
  cover.kind = Kind::kCenterCrop;
  cover.height = 100;
  cover.width = 200;
  c = PlanImageCrop(cover, 400, 500, 1);
  EXPECT_EQ(Describe(c.box), Describe(ImageRegion{75, 0, 250, 500}));
  c = PlanImageCrop(cover, 100, 1000, 1);
  EXPECT_EQ(Describe(c.box), Describe(ImageRegion{0, 400, 100, 200}));
  // Whole image for resize and decode.
  ImageTransform resize;
  resize.kind = Kind::kResize;
  resize.height = resize.width = 32;
  EXPECT_EQ(Describe(PlanImageCrop(resize, 40, 50, 3).box),
            Describe(ImageRegion{0, 0, 40, 50}));
}

// A transformer's scratch is charged to the budget it is given: the decoded
// crop's bytes at least, moved to a new budget whole, given back when the
// transformer goes.
TEST(ImageTransformTest, ScratchIsChargedToTheBudget) {
  auto first = std::make_shared<MemoryBudget>("first");
  auto second = std::make_shared<MemoryBudget>("second");
  ImageTransform transform;
  transform.kind = ImageTransform::Kind::kResize;
  transform.height = 100;
  transform.width = 120;
  std::vector<std::byte> out(100 * 120 * 3);
  {
    ImageTransformer transformer;
    transformer.ChargeTo(first);
    ImageTransformStats stats;
    ASSERT_TRUE(transformer
                    .Apply(*Codec("jpeg"), PhotoJpeg(), transform, 1,
                           {out.data(), out.size()}, &stats)
                    .ok());
    // The decoded pixels before the resampling (at a DCT scale).
    ASSERT_TRUE(stats.resampled);
    EXPECT_GE(first->in_use(),
              int64_t{stats.decoded.height} * stats.decoded.width * 3);
    const int64_t held = first->in_use();
    transformer.ChargeTo(second);
    EXPECT_EQ(first->in_use(), 0);
    EXPECT_EQ(second->in_use(), held);
  }
  EXPECT_EQ(second->in_use(), 0);
}

TEST(ImageTransformTest, ValidationAndShapes) {
  EXPECT_TRUE(ValidateImageTransform(ImageTransform{}).ok());
  EXPECT_TRUE(ValidateImageTransform(ImageTransform::Train(224)).ok());
  EXPECT_TRUE(ValidateImageTransform(ImageTransform::Eval(224)).ok());
  auto bad = [](auto mutate) {
    ImageTransform t = ImageTransform::Train(224);
    mutate(t);
    const Status s = ValidateImageTransform(t);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  };
  bad([](ImageTransform& t) { t.height = 0; });
  bad([](ImageTransform& t) { t.width = 70000; });
  bad([](ImageTransform& t) { t.scale_min = 0; });
  bad([](ImageTransform& t) { t.scale_min = 0.9, t.scale_max = 0.5; });
  bad([](ImageTransform& t) { t.scale_max = 1.5; });
  bad([](ImageTransform& t) { t.scale_min = std::nan(""); });
  bad([](ImageTransform& t) { t.ratio_min = -1; });
  bad([](ImageTransform& t) { t.ratio_max = INFINITY; });
  bad([](ImageTransform& t) { t.ratio_min = 2, t.ratio_max = 1; });
  bad([](ImageTransform& t) { t.resize_shorter = 256; });
  bad([](ImageTransform& t) { t.kind = Kind::kDecode; });  // size given
  bad([](ImageTransform& t) { t.kind = static_cast<Kind>(9); });
  bad([](ImageTransform& t) {
    t.kind = Kind::kCenterCrop;
    t.resize_shorter = 200;
  });

  ImageInfo gray;
  gray.height = 10;
  gray.width = 20;
  gray.channels = 2;  // gray + alpha
  ImageInfo rgba = gray;
  rgba.channels = 4;
  ImageTransform t;
  t.channels = Channels::kDefault;
  EXPECT_EQ(*ImageTransformShape(t, gray), (Shape{10, 20, 1}));
  EXPECT_EQ(*ImageTransformShape(t, rgba), (Shape{10, 20, 3}));
  EXPECT_FALSE(FixedImageTransformShape(t).has_value());
  t = ImageTransform::Train(224);
  EXPECT_EQ(*ImageTransformShape(t, gray), (Shape{224, 224, 3}));
  EXPECT_EQ(FixedImageTransformShape(t), (Shape{224, 224, 3}));
  t.channels = Channels::kGray;
  EXPECT_EQ(FixedImageTransformShape(t), (Shape{224, 224, 1}));
  t.channels = Channels::kDefault;
  EXPECT_FALSE(FixedImageTransformShape(t).has_value());
  t.height = 0;
  EXPECT_EQ(ImageTransformShape(t, gray).status().code(),
            StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Pixels against Pillow, full-resolution path.

TEST(ImageTransformTest, MatchesPillowWithoutDctScaling) {
  ASSERT_TRUE(HavePillow()) << "needs python3-numpy and python3-pil";
  auto codec = Codec("jpeg");
  const auto& jpeg = PhotoJpeg();
  const Image rgb = Decode(*codec, jpeg, Channels::kRgb);
  const Image gray = Decode(*codec, jpeg, Channels::kGray);
  const auto gray_jpeg = ReadFile(kData / "jpeg/testimggray.jpg");
  const Image small_gray = Decode(*codec, gray_jpeg, Channels::kGray);

  struct Case {
    ImageTransform transform;
    const std::vector<std::byte>* bytes;
    const Image* source;
    uint64_t seed;
  };
  std::vector<Case> cases;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    ImageTransform t = ImageTransform::Train(seed % 3 == 0 ? 224 : 160);
    t.allow_dct_scaling = false;
    t.channels = seed % 5 == 4 ? Channels::kGray : Channels::kRgb;
    cases.push_back({t, &jpeg, seed % 5 == 4 ? &gray : &rgb, seed});
  }
  ImageTransform eval = ImageTransform::Eval(224);
  eval.allow_dct_scaling = false;
  cases.push_back({eval, &jpeg, &rgb, 0});
  ImageTransform resize;
  resize.kind = Kind::kResize;
  resize.height = 150;
  resize.width = 333;
  resize.random_flip = true;
  resize.allow_dct_scaling = false;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    cases.push_back({resize, &jpeg, &rgb, seed});
  }
  ImageTransform up = resize;  // Enlarges a 149x227 gray JPEG.
  up.channels = Channels::kDefault;
  up.height = 301;
  up.width = 256;
  cases.push_back({up, &gray_jpeg, &small_gray, 0});
  ImageTransform decode;
  decode.random_flip = true;
  cases.push_back({decode, &jpeg, &rgb, 1});
  cases.push_back({decode, &jpeg, &rgb, 2});

  std::vector<PillowJob> jobs;
  std::vector<Image> got;
  int flipped = 0, resampled = 0;
  for (const Case& c : cases) {
    ImageTransformStats stats;
    auto image = Transform(*codec, *c.bytes, c.transform, c.seed, &stats);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(stats.scale_eighths, 8);
    const ImageCrop crop =
        PlanImageCrop(c.transform, c.source->height, c.source->width, c.seed);
    EXPECT_EQ(Describe(stats.crop.box), Describe(crop.box));
    flipped += crop.flip;
    resampled += stats.resampled;
    jobs.push_back(
        {c.source, crop.box, image->height, image->width, crop.flip});
    got.push_back(std::move(*image));
  }
  EXPECT_GT(flipped, 5);
  EXPECT_GT(resampled, 40);
  const std::vector<Image> want = Pillow(jobs);
  size_t differing = 0, total = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Diff d = Compare(got[i], want[i]);
    // Q14 weights against Pillow's 22-bit ones: ties may round apart.
    EXPECT_LE(d.max, 1) << "case " << i << " crop " << Describe(jobs[i].box);
    differing += d.count;
    total += got[i].pixels.size();
  }
  EXPECT_LT(double(differing) / total, 0.01) << differing << " of " << total;
  std::printf("vs Pillow: %zu of %zu samples differ (by 1)\n", differing,
              total);
}

// Random images, extreme factors, both channel counts: the resampler alone
// against Pillow.
TEST(ResizerTest, MatchesPillowOnNoise) {
  ASSERT_TRUE(HavePillow()) << "needs python3-numpy and python3-pil";
  SplitMix64 rng(5);
  const std::vector<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>> sizes =
      {{64, 64, 17, 23},   {5, 7, 64, 3},      {1, 1, 9, 9},
       {300, 2, 1, 1},     {97, 131, 96, 130}, {40, 1000, 40, 7},
       {33, 17, 100, 100}, {512, 3, 7, 3},     {16, 16, 16, 16}};
  std::vector<Image> sources;
  sources.reserve(sizes.size() * 2);
  std::vector<PillowJob> jobs;
  for (int channels : {1, 3}) {
    for (const auto& [h, w, oh, ow] : sizes) {
      Image s{h, w, channels, std::vector<uint8_t>(size_t{h} * w * channels)};
      // Smooth plus noise: flat areas, edges and ties all occur.
      for (size_t i = 0; i < s.pixels.size(); ++i) {
        s.pixels[i] =
            static_cast<uint8_t>((i / 97 * 13 + rng.Bounded(64)) & 255);
      }
      sources.push_back(std::move(s));
      jobs.push_back(
          {&sources.back(), {0, 0, h, w}, oh, ow, jobs.size() % 2 == 1});
    }
  }
  const std::vector<Image> want = Pillow(jobs);
  internal::Resizer resizer;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Image& s = *jobs[i].source;
    std::vector<uint8_t> src(s.pixels);
    src.resize(src.size() + internal::kResizeSourceSlack);
    Image out{jobs[i].height, jobs[i].width, s.channels,
              std::vector<uint8_t>(size_t{jobs[i].height} * jobs[i].width *
                                   s.channels)};
    ASSERT_TRUE(resizer
                    .Resize({src.data(), size_t{s.width} * s.channels, s.height,
                             s.width, s.channels},
                            out.height, out.width, jobs[i].flip,
                            out.pixels.data())
                    .ok());
    const Diff d = Compare(out, want[i]);
    EXPECT_LE(d.max, 1) << "job " << i << ": " << s.height << "x" << s.width
                        << "x" << s.channels << " -> " << out.height << "x"
                        << out.width;
  }
}

TEST(ResizerTest, SimdMatchesPortableBitForBit) {
  // The dispatch picks AVX2 exactly when the CPU has it (without it, the
  // comparison below is of the portable path with itself).
#if defined(__x86_64__)
  EXPECT_EQ(internal::Resizer::UsesSimd(), __builtin_cpu_supports("avx2") != 0);
#endif
  SplitMix64 rng(11);
  internal::Resizer resizer;
  for (int iteration = 0; iteration < 300; ++iteration) {
    const int channels = iteration % 2 ? 3 : 1;
    const uint32_t h = 1 + rng.Bounded(300), w = 1 + rng.Bounded(300);
    // Also one pass only: the horizontal one then writes the output.
    const uint32_t oh = iteration % 3 == 0 ? h : 1 + rng.Bounded(260);
    const uint32_t ow = iteration % 5 == 0 ? w : 1 + rng.Bounded(260);
    const bool mirror = rng.Bounded(2);
    std::vector<uint8_t> src(size_t{h} * w * channels +
                             internal::kResizeSourceSlack);
    for (auto& v : src) v = static_cast<uint8_t>(rng.Next());
    const internal::PixelView view{src.data(), size_t{w} * channels, h, w,
                                   channels};
    std::vector<uint8_t> simd(size_t{oh} * ow * channels);
    std::vector<uint8_t> portable(simd.size());
    ASSERT_TRUE(resizer.Resize(view, oh, ow, mirror, simd.data()).ok());
    internal::Resizer::EnableSimdForTesting(false);
    ASSERT_TRUE(resizer.Resize(view, oh, ow, mirror, portable.data()).ok());
    internal::Resizer::EnableSimdForTesting(true);
    ASSERT_EQ(simd, portable) << h << "x" << w << "x" << channels << " -> "
                              << oh << "x" << ow << " mirror " << mirror;
  }
}

TEST(ResizerTest, WeightsSumToOne) {
  internal::Resizer::Weights w;
  for (uint32_t in : {1u, 2u, 3u, 7u, 224u, 500u, 4999u, 65535u}) {
    for (uint32_t out : {1u, 2u, 5u, 224u, 225u, 1000u}) {
      internal::ComputeBilinearWeights(in, out, &w);
      ASSERT_EQ(w.first.size(), out);
      for (uint32_t i = 0; i < out; ++i) {
        ASSERT_GE(w.count[i], 1u);
        ASSERT_LE(w.count[i], w.max_taps);
        ASSERT_LE(uint64_t{w.first[i]} + w.count[i], in);
        int32_t sum = 0;
        for (uint32_t t = 0; t < w.count[i]; ++t) {
          const int16_t k = w.k[size_t{i} * w.max_taps + t];
          ASSERT_GE(k, 0);
          sum += k;
        }
        ASSERT_EQ(sum, 1 << 14) << in << " -> " << out << " output " << i;
      }
    }
  }
}

TEST(ResizerTest, FlatStaysFlatAndMirrorIsFlip) {
  internal::Resizer resizer;
  for (int channels : {1, 3}) {
    for (auto [h, w, oh, ow] : {std::tuple{300u, 400u, 224u, 224u},
                                {10u, 10u, 77u, 13u},
                                {999u, 7u, 3u, 5u},
                                {2000u, 3000u, 3u, 7u}}) {
      for (uint8_t value :
           {uint8_t{0}, uint8_t{1}, uint8_t{128}, uint8_t{254}, uint8_t{255}}) {
        std::vector<uint8_t> src(
            size_t{h} * w * channels + internal::kResizeSourceSlack, value);
        std::vector<uint8_t> out(size_t{oh} * ow * channels);
        ASSERT_TRUE(
            resizer
                .Resize({src.data(), size_t{w} * channels, h, w, channels}, oh,
                        ow, false, out.data())
                .ok());
        ASSERT_TRUE(std::all_of(out.begin(), out.end(),
                                [value](uint8_t v) { return v == value; }))
            << int(value) << " " << h << "x" << w << " -> " << oh << "x" << ow;
      }
    }
  }
  // mirror == resize, then reverse each row.
  SplitMix64 rng(3);
  for (int channels : {1, 3}) {
    const uint32_t h = 50, w = 61, oh = 20, ow = 33;
    std::vector<uint8_t> src(size_t{h} * w * channels +
                             internal::kResizeSourceSlack);
    for (auto& v : src) v = static_cast<uint8_t>(rng.Next());
    std::vector<uint8_t> a(size_t{oh} * ow * channels), b(a.size());
    const internal::PixelView view{src.data(), size_t{w} * channels, h, w,
                                   channels};
    ASSERT_TRUE(resizer.Resize(view, oh, ow, false, a.data()).ok());
    ASSERT_TRUE(resizer.Resize(view, oh, ow, true, b.data()).ok());
    internal::FlipLeftRight(a.data(), oh, ow, channels);
    EXPECT_EQ(a, b);
  }
}

// ---------------------------------------------------------------------------
// DCT scaling.

// The scaled box as documented: edges at round(v * s / 8).
ImageRegion RefScaledBox(const ImageRegion& b, uint32_t scale) {
  auto edge = [scale](double v) {
    return uint32_t(std::floor(v * scale / 8 + 0.5));
  };
  return ImageRegion{edge(b.y), edge(b.x), edge(b.y + b.height) - edge(b.y),
                     edge(b.x + b.width) - edge(b.x)};
}

TEST(ImageTransformTest, DctScalingDecodesLessAndStaysClose) {
  auto codec = Codec("jpeg");
  std::vector<
      std::tuple<const std::vector<std::byte>*, ImageTransform, uint64_t>>
      cases;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    cases.emplace_back(&LargeJpeg(), ImageTransform::Train(seed % 2 ? 224 : 96),
                       seed);
    cases.emplace_back(&PhotoJpeg(), ImageTransform::Train(112), seed);
  }
  ImageTransform resize;
  resize.kind = Kind::kResize;
  for (auto [h, w] : {std::pair{48u, 60u}, {100u, 120u}, {200u, 250u}}) {
    resize.height = h;
    resize.width = w;
    cases.emplace_back(&PhotoJpeg(), resize, 0);
    cases.emplace_back(&LargeJpeg(), resize, 0);
  }
  cases.emplace_back(&LargeJpeg(), ImageTransform::Eval(224), 0);
  cases.emplace_back(&LargeJpeg(), ImageTransform::Eval(112), 0);
  std::map<int, int> scales;
  double worst = 99;
  for (const auto& [bytes, transform, seed] : cases) {
    const ImageInfo info = *codec->ReadInfo(*bytes);
    ImageTransformStats scaled_stats, full_stats;
    auto scaled = Transform(*codec, *bytes, transform, seed, &scaled_stats);
    ImageTransform reference = transform;
    reference.allow_dct_scaling = false;
    auto full = Transform(*codec, *bytes, reference, seed, &full_stats);
    ASSERT_TRUE(scaled.ok() && full.ok());
    EXPECT_EQ(full_stats.scale_eighths, 8);
    const ImageRegion& box = scaled_stats.crop.box;
    EXPECT_EQ(Describe(box), Describe(full_stats.crop.box));
    EXPECT_EQ(Describe(full_stats.decoded), Describe(box));
    const int s = scaled_stats.scale_eighths;
    ++scales[s];
    // The smallest of 1/8, 1/4, 1/2 whose scaled box covers the output.
    int want = 8;
    for (int candidate : {1, 2, 4}) {
      const ImageRegion r = RefScaledBox(box, candidate);
      if (r.height >= transform.height && r.width >= transform.width) {
        want = candidate;
        break;
      }
    }
    ASSERT_EQ(s, want) << Describe(box);
    EXPECT_EQ(Describe(scaled_stats.decoded),
              Describe(s == 8 ? box : RefScaledBox(box, s)));
    EXPECT_GE(scaled_stats.decoded.height, transform.height);
    EXPECT_GE(scaled_stats.decoded.width, transform.width);
    const Diff d = Compare(*scaled, *full);
    if (s == 8) {
      EXPECT_EQ(d.count, 0u);
    } else {
      EXPECT_GE(d.psnr, 30) << "scale " << s << "/8 box " << Describe(box);
      worst = std::min(worst, d.psnr);
    }
  }
  EXPECT_GT(scales[4], 5);
  EXPECT_GT(scales[2], 2);
  EXPECT_GT(scales[1], 0);
  EXPECT_GT(scales[8], 5);
  std::printf("DCT-scaled vs full-resolution: worst PSNR %.1f dB; scales used:",
              worst);
  for (auto [s, n] : scales) std::printf(" %d/8 x%d", s, n);
  std::printf("\n");
}

TEST(ImageTransformTest, ExactScaleDecodesStraightIntoOutput) {
  auto codec = Codec("jpeg");
  const auto jpeg = EncodeJpeg(Photo(448, 448));
  ImageTransform t;
  t.kind = Kind::kResize;
  t.height = t.width = 224;
  ImageTransformStats stats;
  auto got = Transform(*codec, jpeg, t, 0, &stats);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(stats.scale_eighths, 4);
  EXPECT_FALSE(stats.resampled);
  // That is the codec's own half-scale decode.
  ImageDecodeOptions half;
  half.channels = Channels::kRgb;
  half.scale_eighths = 4;
  Image want{224, 224, 3, std::vector<uint8_t>(224 * 224 * 3)};
  ASSERT_TRUE(codec->Decode(jpeg, half, want.span()).ok());
  EXPECT_EQ(got->pixels, want.pixels);
}

// ---------------------------------------------------------------------------
// Determinism, PNG, hostile input, threads, allocations.

TEST(ImageTransformTest, SameSeedSameBytes) {
  auto codec = Codec("jpeg");
  const ImageTransform t = ImageTransform::Train(224);
  std::set<std::vector<uint8_t>> distinct;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto a = Transform(*codec, PhotoJpeg(), t, seed);
    auto b = Transform(*codec, PhotoJpeg(), t, seed);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->pixels, b->pixels);
    distinct.insert(a->pixels);
  }
  EXPECT_EQ(distinct.size(), 20u);
}

TEST(ImageTransformTest, PngColorTypesMatchPillowConvert) {
  ASSERT_TRUE(HavePillow()) << "needs python3-numpy and python3-pil";
  auto codec = Codec("png");
  // Gray 1/8 bit, RGB, palette 4/8 bit (one with tRNS), gray+alpha, RGBA,
  // RGB with tRNS, interlaced.
  const std::vector<std::string> files = {
      "basn0g01.png", "basn0g08.png", "basn2c08.png", "basn3p04.png",
      "basn3p08.png", "tbbn3p08.png", "basn4a08.png", "basn6a08.png",
      "tbrn2c08.png", "basi6a08.png"};
  ImageTransform decode;
  ImageTransform resize;
  resize.kind = Kind::kResize;
  resize.height = 20;
  resize.width = 45;
  resize.random_flip = true;
  std::vector<Image> converted;
  converted.reserve(files.size() * 2);
  std::vector<PillowJob> jobs;
  std::vector<Image> got;
  for (const std::string& file : files) {
    const fs::path path = kData / "pngsuite" / file;
    const auto bytes = ReadFile(path);
    for (Channels channels : {Channels::kRgb, Channels::kGray}) {
      const Image want =
          PillowConvert(path, channels == Channels::kRgb ? "RGB" : "L");
      decode.channels = resize.channels = channels;
      auto image = Transform(*codec, bytes, decode, 0);
      ASSERT_TRUE(image.ok()) << file << ": " << image.status().ToString();
      const Diff d = Compare(*image, want);
      EXPECT_EQ(d.count, 0u) << file << " as " << want.channels;
      converted.push_back(want);
      const uint64_t seed = got.size();
      image = Transform(*codec, bytes, resize, seed);
      ASSERT_TRUE(image.ok()) << file << ": " << image.status().ToString();
      jobs.push_back({&converted.back(),
                      {0, 0, want.height, want.width},
                      20,
                      45,
                      PlanImageCrop(resize, 32, 32, seed).flip});
      got.push_back(std::move(*image));
    }
    // kDefault: gray stays gray, alpha goes.
    decode.channels = Channels::kDefault;
    auto image = Transform(*codec, bytes, decode, 0);
    ASSERT_TRUE(image.ok());
    const ImageInfo info = *codec->ReadInfo(bytes);
    EXPECT_EQ(image->channels, info.channels <= 2 ? 1 : 3) << file;
  }
  const std::vector<Image> want = Pillow(jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_LE(Compare(got[i], want[i]).max, 1) << files[i / 2];
  }
}

TEST(ImageTransformTest, SixteenBitPngRoundsToEightBits) {
  auto codec = Codec("png");
  for (const std::string file :
       {"basn0g16.png", "basn2c16.png", "basn4a16.png", "basn6a16.png"}) {
    const auto bytes = ReadFile(kData / "pngsuite" / file);
    const ImageInfo info = *codec->ReadInfo(bytes);
    ASSERT_EQ(info.dtype, DType::kUInt16);
    std::vector<uint16_t> raw(size_t{info.height} * info.width * info.channels);
    ASSERT_TRUE(
        codec
            ->Decode(bytes, {},
                     {reinterpret_cast<std::byte*>(raw.data()), raw.size() * 2})
            .ok());
    ImageTransform t;
    t.channels = Channels::kDefault;
    auto got = Transform(*codec, bytes, t, 0);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const int out_channels = info.channels <= 2 ? 1 : 3;
    ASSERT_EQ(got->channels, out_channels);
    size_t wrong = 0;
    for (size_t p = 0; p < size_t{info.height} * info.width; ++p) {
      for (int c = 0; c < out_channels; ++c) {
        const double v = raw[p * info.channels + c];
        wrong += got->pixels[p * out_channels + c] !=
                 uint8_t(std::lround(v * 255 / 65535));
      }
    }
    EXPECT_EQ(wrong, 0u) << file;
    // Resized too (the same 8-bit pixels through the resampler).
    t.kind = Kind::kResize;
    t.height = t.width = 13;
    EXPECT_TRUE(Transform(*codec, bytes, t, 0).ok()) << file;
  }
}

TEST(ImageTransformTest, HostileInputAndBadOutputs) {
  auto jpeg_codec = Codec("jpeg");
  auto png_codec = Codec("png");
  const ImageTransform t = ImageTransform::Train(64);
  ImageTransformer transformer;
  std::vector<std::byte> out(64 * 64 * 3);

  // Wrong output size.
  Status s = transformer.Apply(*jpeg_codec, PhotoJpeg(), t, 0,
                               MutableByteSpan(out).first(100));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  // Invalid transform.
  ImageTransform bad = t;
  bad.scale_min = 2;
  s = transformer.Apply(*jpeg_codec, PhotoJpeg(), bad, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  // Empty, truncated and damaged data: the codec's error comes through.
  s = transformer.Apply(*jpeg_codec, {}, t, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  const auto& jpeg = PhotoJpeg();
  ImageTransform whole;
  whole.kind = Kind::kResize;
  whole.height = whole.width = 64;
  s = transformer.Apply(*jpeg_codec, ByteSpan(jpeg).first(jpeg.size() / 2),
                        whole, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  std::vector<std::byte> damaged = jpeg;
  for (size_t i = damaged.size() / 3; i < damaged.size() - 2; i += 97) {
    damaged[i] = std::byte{0xFF};
  }
  s = transformer.Apply(*jpeg_codec, damaged, whole, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  for (const char* file : {"xcrn0g04.png", "xd9n2c08.png", "xdtn0g01.png"}) {
    s = transformer.Apply(*png_codec, ReadFile(kData / "pngsuite" / file), t, 0,
                          out);
    EXPECT_FALSE(s.ok()) << file;
    EXPECT_NE(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  }
  // The transformer is still usable after errors.
  EXPECT_TRUE(transformer.Apply(*jpeg_codec, jpeg, t, 0, out).ok());
  // Over the codec's limits: refused before anything is allocated.
  ImageLimits limits;
  limits.max_pixels = 1000;
  auto small = MakeImageCodec("jpeg", limits);
  ASSERT_TRUE(small.ok());
  s = transformer.Apply(**small, jpeg, t, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
}

TEST(ImageTransformTest, WorkersInParallelMatchOneThread) {
  auto codec = Codec("jpeg");
  const ImageTransform t = ImageTransform::Train(96);
  constexpr int kSamples = 24;
  std::vector<std::vector<uint8_t>> want(kSamples);
  for (int i = 0; i < kSamples; ++i) {
    auto image = Transform(*codec, i % 2 ? PhotoJpeg() : LargeJpeg(), t, i);
    ASSERT_TRUE(image.ok());
    want[i] = image->pixels;
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      ImageTransformer transformer;  // One per worker.
      std::vector<std::byte> out(96 * 96 * 3);
      for (int round = 0; round < 3; ++round) {
        for (int k = 0; k < kSamples; ++k) {
          const int i = (k + w * 5) % kSamples;
          const Status s = transformer.Apply(
              *codec, i % 2 ? PhotoJpeg() : LargeJpeg(), t, i, out);
          if (!s.ok() || std::memcmp(out.data(), want[i].data(), out.size())) {
            ++mismatches;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ImageTransformTest, NoAllocationOnceWarm) {
  auto codec = Codec("jpeg");
  ImageTransformer transformer;
  std::vector<std::byte> out(224 * 224 * 3);
  auto run = [&](const ImageTransform& t) {
    for (uint64_t seed = 0; seed < 50; ++seed) {
      ASSERT_TRUE(transformer.Apply(*codec, PhotoJpeg(), t, seed, out).ok());
    }
  };
  ImageTransform no_dct = ImageTransform::Train(224);
  no_dct.allow_dct_scaling = false;
  for (const ImageTransform& t :
       {ImageTransform::Train(224), ImageTransform::Eval(224), no_dct}) {
    run(t);  // Warm up: buffers grow to the largest crop of these seeds.
    const int64_t before = allocations;
    run(t);
    EXPECT_EQ(allocations - before, 0);
  }
}

// Pixels too, with a reader that captures one reference (as the loader's
// does): once warm, neither a crop read straight into the output nor a
// resampled one allocates.
TEST(ImageTransformTest, PixelsDoNotAllocateOnceWarm) {
  const Image src = Photo(300, 400);
  ImageInfo info;
  info.height = src.height;
  info.width = src.width;
  info.channels = 3;
  const struct { const Image& image; } ctx{src};
  const auto read = [&ctx](const ImageRegion& box, MutableByteSpan out) {
    const size_t row = size_t{box.width} * 3;
    for (uint32_t y = 0; y < box.height; ++y) {
      std::memcpy(out.data() + y * row,
                  ctx.image.pixels.data() +
                      (size_t{box.y + y} * ctx.image.width + box.x) * 3,
                  row);
    }
    return Status::OK();
  };
  ImageTransform crop;
  crop.kind = Kind::kRandomCrop;
  crop.height = crop.width = 224;
  crop.random_flip = true;
  ImageTransformer transformer;
  std::vector<std::byte> out(224 * 224 * 3);
  for (const ImageTransform& t : {crop, ImageTransform::Train(224)}) {
    auto run = [&] {
      for (uint64_t seed = 0; seed < 50; ++seed) {
        ASSERT_TRUE(transformer.ApplyToPixels(info, read, t, seed, out).ok());
      }
    };
    run();  // warm up
    const int64_t before = allocations;
    run();
    EXPECT_EQ(allocations - before, 0);
  }
}

}  // namespace
}  // namespace shoal
