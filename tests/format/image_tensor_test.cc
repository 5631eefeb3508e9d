// Image tensors with sample_compression jpeg or png: encoded bytes stored as
// they came (pass-through), other formats re-encoded, pixels encoded on
// append, decode on read, tiling, and the spec rules.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "format/internal/mem_store.h"
#include "format/verify.h"

namespace shoal {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A smooth test picture (compresses like a photo, unlike noise).
std::vector<uint8_t> Picture(uint32_t h, uint32_t w, uint32_t c, int seed) {
  std::vector<uint8_t> v(size_t{h} * w * c);
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x)
      for (uint32_t k = 0; k < c; ++k)
        v[(size_t{y} * w + x) * c + k] = static_cast<uint8_t>(
            20 + (x * 150) / w + (y * 50) / h + k * 10 + (seed % 5));
  return v;
}

Result<Tensor*> MakeImageTensor(Dataset& ds, const std::string& codec,
                                uint64_t tiling_threshold = 0) {
  return ds.CreateTensor({.name = "images",
                          .htype = HType::kImage,
                          .sample_compression = codec,
                          .tiling_threshold = tiling_threshold});
}

class ImageTensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResetMemStoreForTesting("image-tensor");
    auto ds = Dataset::Create("mem://image-tensor");
    ASSERT_TRUE(ds.ok()) << ds.status();
    ds_ = std::move(*ds);
  }
  std::unique_ptr<Dataset> ds_;
};

TEST_F(ImageTensorTest, JpegBytesPassThroughUnchanged) {
  const std::string jpeg =
      ReadFile(std::string(SHOAL_TEST_DATA) + "/jpeg/testorig.jpg");
  ASSERT_FALSE(jpeg.empty()) << "tests/data/jpeg/testorig.jpg missing";
  auto t = MakeImageTensor(*ds_, "jpeg");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(
      (*t)->AppendEncoded(AsBytes(jpeg), R"({"source":"testorig.jpg"})").ok());
  ASSERT_TRUE(ds_->Flush().ok());
  auto stored = (*t)->ReadStored(0);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->view(), jpeg)
      << "pass-through must store the bytes as they came";
  EXPECT_EQ(*(*t)->ReadShape(0), (Shape{149, 227, 3}));
  // Reading decodes exactly as the codec alone does.
  auto codec = MakeImageCodec("jpeg");
  ASSERT_TRUE(codec.ok());
  std::vector<std::byte> want(149 * 227 * 3);
  ASSERT_TRUE((*codec)->Decode(AsBytes(jpeg), {}, want).ok());
  auto sample = (*t)->Read(0);
  ASSERT_TRUE(sample.ok()) << sample.status();
  ASSERT_EQ(sample->data.size(), want.size());
  EXPECT_EQ(std::memcmp(sample->data.data(), want.data(), want.size()), 0);
}

TEST_F(ImageTensorTest, PngPixelsRoundTripExactly) {
  auto t = MakeImageTensor(*ds_, "png");
  ASSERT_TRUE(t.ok()) << t.status();
  for (int i = 0; i < 5; ++i) {
    const uint32_t c = 1 + i % 4;
    const auto pixels = Picture(20 + i, 30 + 2 * i, c, i);
    ASSERT_TRUE((*t)->Append(Shape{20u + i, 30u + 2 * i, c},
                             std::as_bytes(std::span(pixels)))
                    .ok());
  }
  ASSERT_TRUE(ds_->Flush().ok());
  for (int i = 0; i < 5; ++i) {
    const uint32_t c = 1 + i % 4;
    const auto pixels = Picture(20 + i, 30 + 2 * i, c, i);
    auto sample = (*t)->Read(i);
    ASSERT_TRUE(sample.ok()) << sample.status();
    EXPECT_EQ(sample->shape, (Shape{20u + i, 30u + 2 * i, c}));
    ASSERT_EQ(sample->data.size(), pixels.size());
    EXPECT_EQ(std::memcmp(sample->data.data(), pixels.data(), pixels.size()), 0)
        << i;
    auto stored = (*t)->ReadStored(i);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->view().substr(1, 3), "PNG") << "stored as PNG";
  }
}

TEST_F(ImageTensorTest, OtherFormatIsReencoded) {
  // A PNG appended to a jpeg tensor is decoded and stored as JPEG.
  auto png = MakeImageCodec("png");
  ASSERT_TRUE(png.ok());
  const auto pixels = Picture(64, 48, 3, 1);
  auto encoded = (*png)->Encode(Shape{64, 48, 3}, DType::kUInt8,
                                std::as_bytes(std::span(pixels)), {});
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  auto t = MakeImageTensor(*ds_, "jpeg");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->AppendEncoded(encoded->span()).ok());
  auto stored = (*t)->ReadStored(0);
  ASSERT_TRUE(stored.ok());
  ASSERT_GE(stored->size(), 3u);
  EXPECT_EQ(static_cast<uint8_t>(stored->data()[0]), 0xFF);
  EXPECT_EQ(static_cast<uint8_t>(stored->data()[1]), 0xD8);
  auto sample = (*t)->Read(0);
  ASSERT_TRUE(sample.ok());
  EXPECT_EQ(sample->shape, (Shape{64, 48, 3}));
  // Lossy, but close: mean absolute error of a q90 JPEG of a smooth image.
  double err = 0;
  for (size_t k = 0; k < pixels.size(); ++k) {
    err += std::abs(
        static_cast<int>(pixels[k]) -
        static_cast<int>(static_cast<uint8_t>(sample->data.data()[k])));
  }
  EXPECT_LT(err / pixels.size(), 4.0);
}

TEST_F(ImageTensorTest, LargeImagesAreTiledAndReassembled) {
  auto t = MakeImageTensor(*ds_, "png", /*tiling_threshold=*/16 << 10);
  ASSERT_TRUE(t.ok());
  const auto pixels = Picture(150, 130, 3, 7);  // 58500 bytes > 16 KiB
  ASSERT_TRUE(
      (*t)->Append(Shape{150, 130, 3}, std::as_bytes(std::span(pixels))).ok());
  ASSERT_TRUE(ds_->Flush().ok());
  EXPECT_GT((*t)->stats().num_chunks, 1u);
  auto sample = (*t)->Read(0);
  ASSERT_TRUE(sample.ok()) << sample.status();
  ASSERT_EQ(sample->data.size(), pixels.size());
  EXPECT_EQ(std::memcmp(sample->data.data(), pixels.data(), pixels.size()), 0);
  auto report = VerifyDataset("mem://image-tensor", {.decode_samples = true});
  ASSERT_TRUE(report.ok());
  for (const auto& p : report->problems) ADD_FAILURE() << p.ToString();
}

TEST_F(ImageTensorTest, BadInputIsRejectedWithoutAppending) {
  auto t = MakeImageTensor(*ds_, "jpeg");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->AppendEncoded(AsBytes("not an image at all")).code(),
            StatusCode::kInvalidArgument);
  const std::string jpeg =
      ReadFile(std::string(SHOAL_TEST_DATA) + "/jpeg/testorig.jpg");
  ASSERT_GT(jpeg.size(), 100u);
  EXPECT_FALSE(
      (*t)->AppendEncoded(AsBytes(std::string_view(jpeg).substr(0, 20))).ok());
  EXPECT_EQ((*t)->size(), 0u);
}

TEST_F(ImageTensorTest, AnyImageTensorKeepsEachFormatAsItCame) {
  // sample_compression "image": JPEG and PNG files side by side, each stored
  // as it came and decoded by the codec its signature names.
  const std::string jpeg =
      ReadFile(std::string(SHOAL_TEST_DATA) + "/jpeg/testorig.jpg");
  const std::string png =
      ReadFile(std::string(SHOAL_TEST_DATA) + "/pngsuite/basn2c08.png");
  ASSERT_FALSE(jpeg.empty());
  ASSERT_FALSE(png.empty());
  auto t = MakeImageTensor(*ds_, "image");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->AppendEncoded(AsBytes(jpeg)).ok());
  ASSERT_TRUE((*t)->AppendEncoded(AsBytes(png)).ok());
  // Pixels appended as an array are stored losslessly, as PNG.
  const auto pixels = Picture(20, 30, 3, 2);
  ASSERT_TRUE(
      (*t)->Append(Shape{20, 30, 3}, std::as_bytes(std::span(pixels))).ok());
  ASSERT_TRUE(ds_->Flush().ok());
  ASSERT_TRUE(ds_->Close().ok());

  auto reopened = Dataset::Open("mem://image-tensor", {.read_only = true});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto images = (*reopened)->tensor("images");
  ASSERT_TRUE(images.ok());
  EXPECT_EQ((*images)->spec().sample_compression, "image");
  const std::string formats[] = {"jpeg", "png", "png"};
  const std::string* inputs[] = {&jpeg, &png, nullptr};
  for (uint64_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    auto stored = (*images)->ReadStored(i);
    ASSERT_TRUE(stored.ok()) << stored.status();
    if (inputs[i] != nullptr) {
      EXPECT_EQ(stored->view(), *inputs[i]);
    }
    auto codec = (*images)->ImageCodecFor(stored->span());
    ASSERT_TRUE(codec.ok()) << codec.status();
    EXPECT_EQ((*codec)->name(), formats[i]);
    // Read() equals the codec's own decode of the stored bytes.
    auto info = (*codec)->ReadInfo(stored->span());
    ASSERT_TRUE(info.ok());
    auto shape = (*codec)->OutputShape(*info, {});
    ASSERT_TRUE(shape.ok());
    std::vector<std::byte> want(*shape->ByteSize(DType::kUInt8));
    ASSERT_TRUE((*codec)->Decode(stored->span(), {}, want).ok());
    auto sample = (*images)->Read(i);
    ASSERT_TRUE(sample.ok()) << sample.status();
    EXPECT_EQ(sample->shape, *shape);
    ASSERT_EQ(sample->data.size(), want.size());
    EXPECT_EQ(std::memcmp(sample->data.data(), want.data(), want.size()), 0);
  }
  auto last = (*images)->Read(2);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(std::memcmp(last->data.data(), pixels.data(), pixels.size()), 0);
  EXPECT_EQ((*images)->ImageCodecFor(AsBytes("GIF89a")).status().code(),
            StatusCode::kCorruption);
}

TEST_F(ImageTensorTest, ImageCodecForNeedsAnImageTensor) {
  auto raw = ds_->CreateTensor({.name = "raw", .htype = HType::kImage});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ((*raw)->ImageCodecFor(AsBytes("\xFF\xD8\xFF")).status().code(),
            StatusCode::kInvalidArgument);
  auto lz4 = ds_->CreateTensor(
      {.name = "lz4", .htype = HType::kImage, .sample_compression = "lz4"});
  ASSERT_TRUE(lz4.ok()) << lz4.status();
  EXPECT_EQ((*lz4)->ImageCodecFor(AsBytes("\xFF\xD8\xFF")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ImageTensorTest, SpecRules) {
  EXPECT_EQ(ds_->CreateTensor({.name = "g",
                               .dtype = DType::kUInt8,
                               .sample_compression = "jpeg"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ds_->CreateTensor({.name = "d",
                               .htype = HType::kImage,
                               .dtype = DType::kUInt16,
                               .sample_compression = "jpeg"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  auto raw = ds_->CreateTensor({.name = "raw", .htype = HType::kImage});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ((*raw)->AppendEncoded(AsBytes("\xFF\xD8\xFF")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ds_->CreateTensor({.name = "any_generic",
                               .dtype = DType::kUInt8,
                               .sample_compression = "image"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ds_->CreateTensor({.name = "any_float",
                               .htype = HType::kImage,
                               .dtype = DType::kFloat32,
                               .sample_compression = "image"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
