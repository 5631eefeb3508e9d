// Image transforms of images stored as pixels (ImageTransformer::
// ApplyToPixels, and the loader reading only each sample's crop of a raw,
// tiled or untiled image tensor): checked against slicing the source array
// and against the same transform of a PNG of the same pixels, which goes
// through the codec and a whole-image decode instead of region reads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "loader/image_transform.h"
#include "loader/loader.h"

namespace shoal {
namespace {

using Kind = ImageTransform::Kind;
using Channels = ImageDecodeOptions::Channels;

// An image of random pixels with smooth parts, so PNG and lz4 compress it
// a little and every pixel differs from its neighbours somewhere.
struct Pixels {
  uint32_t height = 0, width = 0;
  int channels = 0;
  DType dtype = DType::kUInt8;
  std::vector<std::byte> bytes;

  ImageInfo Info() const {
    ImageInfo info;
    info.height = height;
    info.width = width;
    info.channels = static_cast<uint8_t>(channels);
    info.dtype = dtype;
    return info;
  }
  Shape shape() const { return Shape{height, width, uint64_t(channels)}; }
};

Pixels MakePixels(uint32_t height, uint32_t width, int channels, DType dtype,
                  uint64_t seed) {
  Pixels p{height, width, channels, dtype};
  const size_t item = dtype == DType::kUInt16 ? 2 : 1;
  p.bytes.resize(size_t{height} * width * channels * item);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < p.bytes.size(); ++i) {
    const size_t pixel = i / (channels * item);
    const bool smooth = (pixel / width) % 7 < 3;
    p.bytes[i] = static_cast<std::byte>(
        smooth ? (pixel % width) * 3 + i % (channels * item) : rng() & 0xff);
  }
  return p;
}

// ApplyToPixels' reader over the array: copies the box, counting the bytes
// it was asked for.
ImageTransformer::RegionReader ReaderOf(const Pixels& p, uint64_t* read) {
  return [&p, read](const ImageRegion& box, MutableByteSpan out) -> Status {
    const size_t item = p.dtype == DType::kUInt16 ? 2 : 1;
    const size_t pixel = size_t(p.channels) * item;
    if (out.size() != size_t{box.height} * box.width * pixel) {
      return InvalidArgument("reader: wrong output size");
    }
    for (uint32_t y = 0; y < box.height; ++y) {
      std::memcpy(
          out.data() + size_t{y} * box.width * pixel,
          p.bytes.data() + (size_t{box.y + y} * p.width + box.x) * pixel,
          size_t{box.width} * pixel);
    }
    if (read != nullptr) *read += out.size();
    return Status::OK();
  };
}

// What a random crop must be: the box of the array, mirrored when flipped.
std::vector<std::byte> Slice(const Pixels& p, const ImageCrop& crop) {
  const ImageRegion& b = crop.box;
  const size_t c = p.channels;
  std::vector<std::byte> out(size_t{b.height} * b.width * c);
  for (uint32_t y = 0; y < b.height; ++y) {
    for (uint32_t x = 0; x < b.width; ++x) {
      const uint32_t from = crop.flip ? b.width - 1 - x : x;
      for (size_t k = 0; k < c; ++k) {
        out[(size_t{y} * b.width + x) * c + k] =
            p.bytes[(size_t{b.y + y} * p.width + b.x + from) * c + k];
      }
    }
  }
  return out;
}

ImageTransform RandomCrop(uint32_t height, uint32_t width, bool flip) {
  ImageTransform t;
  t.kind = Kind::kRandomCrop;
  t.height = height;
  t.width = width;
  t.random_flip = flip;
  t.channels = Channels::kDefault;
  return t;
}

TEST(PixelTransformTest, RandomCropReadsOnlyTheBoxAndIsTheArraySliced) {
  for (const int channels : {1, 3}) {
    const Pixels p = MakePixels(301, 257, channels, DType::kUInt8, channels);
    const ImageTransform t = RandomCrop(64, 48, true);
    ImageTransformer transformer;
    int flipped = 0;
    for (uint64_t seed = 0; seed < 50; ++seed) {
      std::vector<std::byte> out(64 * 48 * channels);
      uint64_t read = 0;
      ImageTransformStats stats;
      ASSERT_TRUE(
          transformer
              .ApplyToPixels(p.Info(), ReaderOf(p, &read), t, seed, out, &stats)
              .ok());
      EXPECT_EQ(read, out.size()) << "read more than the crop";
      EXPECT_FALSE(stats.resampled);
      const ImageCrop plan = PlanImageCrop(t, 301, 257, seed);
      EXPECT_EQ(stats.crop.box.y, plan.box.y);
      EXPECT_EQ(stats.crop.box.x, plan.box.x);
      EXPECT_EQ(stats.crop.flip, plan.flip);
      ASSERT_EQ(out, Slice(p, stats.crop)) << "seed " << seed;
      flipped += stats.crop.flip;
    }
    EXPECT_GT(flipped, 10);
    EXPECT_LT(flipped, 40);
  }
}

// Every kind, channel choice and stored depth: the same bytes as Apply()
// on a PNG of the array (a whole-image decode, then the same crop).
TEST(PixelTransformTest, SameBytesAsTheTransformOfAPngOfThePixels) {
  auto png = MakeImageCodec("png");
  ASSERT_TRUE(png.ok()) << png.status();
  std::vector<ImageTransform> transforms;
  for (const Channels ch :
       {Channels::kDefault, Channels::kRgb, Channels::kGray}) {
    ImageTransform t = RandomCrop(40, 56, true);
    t.channels = ch;
    transforms.push_back(t);
    t = ImageTransform::Train(32);
    t.channels = ch;
    transforms.push_back(t);
    t = ImageTransform::Eval(48);
    t.channels = ch;
    transforms.push_back(t);
    t.kind = Kind::kResize;
    t.resize_shorter = 0;
    t.height = 70;
    t.width = 20;
    transforms.push_back(t);
    t = ImageTransform{};
    t.channels = ch;
    transforms.push_back(t);  // decode: the whole image
  }
  int checked = 0;
  for (const DType dtype : {DType::kUInt8, DType::kUInt16}) {
    for (const int channels : {1, 2, 3, 4}) {
      const Pixels p = MakePixels(97, 133, channels, dtype, 7 * channels);
      auto encoded = (*png)->Encode(p.shape(), dtype, p.bytes, {});
      ASSERT_TRUE(encoded.ok()) << encoded.status();
      ImageTransformer from_png, from_pixels;
      for (const ImageTransform& t : transforms) {
        for (uint64_t seed = 0; seed < 4; ++seed) {
          auto shape = ImageTransformShape(t, p.Info());
          ASSERT_TRUE(shape.ok()) << shape.status();
          std::vector<std::byte> want(shape->num_elements());
          std::vector<std::byte> got(shape->num_elements(), std::byte{7});
          ImageTransformStats want_stats, got_stats;
          ASSERT_TRUE(
              from_png.Apply(**png, encoded->span(), t, seed, want, &want_stats)
                  .ok());
          uint64_t read = 0;
          const Status s = from_pixels.ApplyToPixels(
              p.Info(), ReaderOf(p, &read), t, seed, got, &got_stats);
          ASSERT_TRUE(s.ok()) << s;
          const std::string what =
              std::string(DTypeName(dtype)) + " x" + std::to_string(channels) +
              " kind " + std::to_string(int(t.kind)) + " channels " +
              std::to_string(int(t.channels)) + " seed " + std::to_string(seed);
          ASSERT_EQ(got, want) << what;
          EXPECT_EQ(got_stats.resampled, want_stats.resampled) << what;
          const ImageRegion& b = got_stats.crop.box;
          EXPECT_EQ(read, size_t{b.height} * b.width * channels *
                              (dtype == DType::kUInt16 ? 2 : 1))
              << what;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 4 * 15 * 4);
}

TEST(PixelTransformTest, BadPixelsAndReaderErrors) {
  ImageTransformer transformer;
  const Pixels p = MakePixels(20, 30, 3, DType::kUInt8, 1);
  std::vector<std::byte> out(8 * 8 * 3);
  const ImageTransform t = RandomCrop(8, 8, false);

  ImageInfo info = p.Info();
  info.dtype = DType::kFloat32;
  Status s = transformer.ApplyToPixels(info, ReaderOf(p, nullptr), t, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s;
  info = p.Info();
  info.channels = 5;
  s = transformer.ApplyToPixels(info, ReaderOf(p, nullptr), t, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s;

  // Smaller than the crop, as torchvision's RandomCrop refuses.
  s = transformer.ApplyToPixels(p.Info(), ReaderOf(p, nullptr),
                                RandomCrop(21, 8, false), 0, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("20x30"), std::string::npos) << s;

  std::vector<std::byte> wrong(8 * 8 * 3 - 1);
  s = transformer.ApplyToPixels(p.Info(), ReaderOf(p, nullptr), t, 0, wrong);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;

  // The reader's error comes back as it is, on both paths.
  auto failing = [](const ImageRegion&, MutableByteSpan) {
    return Corruption("chunk 'x': checksum");
  };
  s = transformer.ApplyToPixels(p.Info(), failing, t, 0, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s;
  s = transformer.ApplyToPixels(p.Info(), failing, ImageTransform::Train(8), 0,
                                out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s;
}

// ---------------------------------------------------------------------------
// The loader: one dataset holds the same images as pixels (lz4 chunks, the
// large ones tiled) and as PNG; both tensors are loaded under one transform,
// so every sample gets the same seed and must come out the same.

// Blocks of 8 KiB: crops are read by region (samples span blocks). Blocks
// of 1 MiB: the loader holds the chunks and cuts crops in memory.
std::shared_ptr<const Dataset> PixelsAndPng(const std::string& url,
                                            std::vector<Pixels>& images,
                                            uint64_t block_bytes = 8 << 10) {
  auto ds = Dataset::Create(url);
  EXPECT_TRUE(ds.ok()) << ds.status();
  TensorSpec pixels;
  pixels.name = "pixels";
  pixels.htype = HType::kImage;
  pixels.dtype = DType::kUInt8;
  pixels.chunk_compression = "lz4";
  pixels.max_chunk_bytes = 2 << 20;
  pixels.tiling_threshold = 64 << 10;  // tiles of at most 64 KiB
  pixels.block_bytes = block_bytes;
  TensorSpec png;
  png.name = "png";
  png.htype = HType::kImage;
  png.sample_compression = "png";
  Tensor* a = *(*ds)->CreateTensor(pixels);
  Tensor* b = *(*ds)->CreateTensor(png);
  for (uint32_t i = 0; i < 24; ++i) {
    // 9 KB (untiled) to 500 KB (tiled) images.
    const uint32_t h = 56 + (i * 37) % 300, w = 64 + (i * 53) % 330;
    images.push_back(MakePixels(h, w, 3, DType::kUInt8, 100 + i));
    EXPECT_TRUE(a->Append(images.back().shape(), images.back().bytes).ok());
    EXPECT_TRUE(b->Append(images.back().shape(), images.back().bytes).ok());
  }
  EXPECT_TRUE((*ds)->Flush().ok());
  EXPECT_TRUE(*a->IsTiled(23)) << "the test wants tiled samples";
  EXPECT_FALSE(*a->IsTiled(0)) << "and untiled ones";
  return std::shared_ptr<const Dataset>(std::move(*ds));
}

// Runs `options` to the end; sample by sample, pixels == png.
void ExpectPixelsEqualPng(const std::shared_ptr<const Dataset>& ds,
                          LoaderOptions options, uint64_t* samples) {
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!batch->has_value()) continue;
    const TensorBatch& pixels = **(*batch)->tensor("pixels");
    const TensorBatch& png = **(*batch)->tensor("png");
    ASSERT_EQ(pixels.size(), png.size());
    for (size_t k = 0; k < pixels.size(); ++k) {
      ASSERT_EQ(pixels.shapes()[k], png.shapes()[k]);
      const ByteSpan x = pixels.sample(k), y = png.sample(k);
      ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end()))
          << "sample " << (*batch)->indices()[k];
      ++*samples;
    }
  }
}

TEST(PixelTransformLoaderTest, CropsOfPixelTensorsEqualThoseOfPngs) {
  uint64_t samples = 0;
  for (const uint64_t block : {8u << 10, 1u << 20}) {
    std::vector<Pixels> images;
    auto ds = PixelsAndPng("mem://pixel-crops-" + std::to_string(block), images,
                           block);
    for (const int threads : {1, 2}) {
      LoaderOptions options{
          .batch_size = 5, .epochs = 2, .seed = 11, .threads = threads};
      const ImageTransform crop = RandomCrop(48, 56, true);
      options.transforms["pixels"] = crop;
      options.transforms["png"] = crop;
      ExpectPixelsEqualPng(ds, options, &samples);
      ImageTransform train = ImageTransform::Train(40);
      options.transforms["pixels"] = train;
      options.transforms["png"] = train;
      ExpectPixelsEqualPng(ds, options, &samples);
      // A full shuffle of samples read one by one takes the same crops.
      options.shuffle = ShuffleMode::kFull;
      options.memory_budget = 1 << 20;
      ExpectPixelsEqualPng(ds, options, &samples);
    }
  }
  EXPECT_EQ(samples, 2u * 2 * 3 * 2 * 24);
}

TEST(PixelTransformLoaderTest, ACropOfAPixelSampleIsItsSlice) {
  std::vector<Pixels> images;
  auto ds = PixelsAndPng("mem://pixel-slices", images);
  LoaderOptions options{.tensors = {"pixels"}, .batch_size = 4, .seed = 5};
  options.transforms["pixels"] = RandomCrop(50, 60, false);
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  std::map<uint64_t, int> seen;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!batch->has_value()) continue;
    const TensorBatch& t = **(*batch)->tensor("pixels");
    EXPECT_EQ(t.shape(), (Shape{t.size(), 50, 60, 3}));
    for (size_t k = 0; k < t.size(); ++k) {
      const uint64_t i = (*batch)->indices()[k];
      const Pixels& p = images[i];
      const ByteSpan got = t.sample(k);
      // Some place of the image holds exactly these pixels (its first row
      // is compared before the whole box).
      bool found = false;
      for (uint32_t y = 0; y + 50 <= p.height && !found; ++y) {
        for (uint32_t x = 0; x + 60 <= p.width && !found; ++x) {
          if (std::memcmp(got.data(),
                          p.bytes.data() + (size_t{y} * p.width + x) * 3,
                          60 * 3) != 0) {
            continue;
          }
          const auto want = Slice(p, ImageCrop{{y, x, 50, 60}, false});
          found = std::equal(got.begin(), got.end(), want.begin());
        }
      }
      EXPECT_TRUE(found) << "sample " << i;
      ++seen[i];
    }
  }
  EXPECT_EQ(seen.size(), 24u);
}

TEST(PixelTransformLoaderTest, ClearErrors) {
  std::vector<Pixels> images;
  auto ds = PixelsAndPng("mem://pixel-errors", images);
  // The smallest image is 56 x 64: a larger crop fails naming it.
  LoaderOptions options{.tensors = {"pixels"}, .batch_size = 24};
  options.transforms["pixels"] = RandomCrop(57, 8, false);
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  auto batch = (*loader)->Next();
  ASSERT_FALSE(batch.ok());
  const std::string message(batch.status().message());
  EXPECT_NE(message.find("tensor 'pixels'"), std::string::npos) << message;
  EXPECT_NE(message.find("sample 0"), std::string::npos) << message;
  EXPECT_NE(message.find("56x64"), std::string::npos) << message;

  // Arrays that are not images are refused up front, saying what would do.
  auto other = Dataset::Create("mem://pixel-generic");
  ASSERT_TRUE(other.ok());
  Tensor* g = *(*other)->CreateTensor(
      {.name = "g", .htype = HType::kGeneric, .dtype = DType::kUInt8});
  const std::vector<std::byte> zeros(4 * 4 * 3);
  ASSERT_TRUE(g->Append(Shape{4, 4, 3}, zeros).ok());
  ASSERT_TRUE((*other)->Flush().ok());
  std::shared_ptr<const Dataset> generic(std::move(*other));
  LoaderOptions bad;
  bad.transforms["g"] = RandomCrop(2, 2, false);
  auto refused = Loader::Create(generic, bad);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("uint8 or uint16 pixels"),
            std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace shoal
