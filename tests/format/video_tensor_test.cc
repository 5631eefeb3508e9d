// Video tensors in the format: files stored as they came with the shape and
// info the caller gives, never tiled, read back byte for byte; the format
// refuses to decode them (video/ does) and to take pixels.
#include <gtest/gtest.h>

#include <cstring>

#include "format/dataset.h"
#include "format/verify.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::FreshMemUrl;
using format_test::HasCode;
using format_test::Ok;
using format_test::SampleBytes;
using format_test::Span;

TensorSpec VideoSpec() {
  TensorSpec spec;
  spec.name = "videos";
  spec.htype = HType::kVideo;
  spec.sample_compression = "mp4";
  spec.max_chunk_bytes = 64 << 10;
  return spec;
}

TEST(VideoTensorTest, StoresFilesAsTheyCameUntiled) {
  const std::string url = FreshMemUrl("video");
  // Stand-ins for video files (the format does not parse them): one far
  // larger than a chunk, which must stay in one piece.
  const std::vector<std::vector<std::byte>> files = {
      SampleBytes(1, 0, 1000), SampleBytes(1, 1, 300 << 10),
      SampleBytes(1, 2, 5000)};
  const std::vector<Shape> shapes = {
      Shape{10, 180, 320, 3}, Shape{3000, 720, 1280, 3}, Shape{1, 2, 2, 3}};
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor(VideoSpec());
    ASSERT_TRUE(Ok(t));
    EXPECT_EQ((*t)->spec().tiling_threshold, kNoTiling);
    for (size_t i = 0; i < files.size(); ++i) {
      ASSERT_TRUE(Ok((*t)->AppendVideo(Span(files[i]), shapes[i],
                                       R"({"video": {"frames": 1}})")));
    }
    ASSERT_TRUE(Ok((*ds)->Close()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("videos");
  ASSERT_TRUE(Ok(t));
  ASSERT_EQ((*t)->size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    auto stored = (*t)->ReadStored(i);
    ASSERT_TRUE(Ok(stored));
    ASSERT_EQ(stored->size(), files[i].size());
    EXPECT_EQ(std::memcmp(stored->data(), files[i].data(), files[i].size()), 0);
    auto shape = (*t)->ReadShape(i);
    ASSERT_TRUE(Ok(shape));
    EXPECT_EQ(*shape, shapes[i]);
    auto info = (*t)->ReadInfo(i);
    ASSERT_TRUE(Ok(info));
    EXPECT_NE(info->find("frames"), std::string::npos);
    // Decoding a whole video as one array is video/'s business.
    EXPECT_TRUE(HasCode((*t)->Read(i).status(), StatusCode::kUnimplemented));
  }
  // The big file is one sample in one chunk object, not tiles.
  const auto extents = (*t)->Extents();
  bool found = false;
  for (const auto& e : extents) {
    if (e.first_sample <= 1 && 1 < e.first_sample + e.num_samples) {
      found = true;
      EXPECT_GE(e.stored_bytes, files[1].size());
    }
  }
  EXPECT_TRUE(found);
  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  for (const auto& problem : report->problems)
    ADD_FAILURE() << problem.ToString();
}

TEST(VideoTensorTest, RejectsWhatIsNotAVideo) {
  auto ds = Dataset::Create(FreshMemUrl("video-bad"));
  ASSERT_TRUE(Ok(ds));
  auto videos = (*ds)->CreateTensor(VideoSpec());
  ASSERT_TRUE(Ok(videos));
  const auto file = SampleBytes(2, 0, 100);
  // Pixels cannot be appended to a pass-through video tensor.
  const std::vector<std::byte> pixels(2 * 2 * 2 * 3);
  EXPECT_TRUE(HasCode((*videos)->Append(Shape{2, 2, 2, 3}, Span(pixels)),
                      StatusCode::kUnimplemented));
  EXPECT_TRUE(HasCode((*videos)->AppendVideo(Span(file), Shape{2, 2, 3}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*videos)->AppendVideo(Span(file), Shape{2, 2, 2, 4}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*videos)->AppendVideo(Span(file), Shape{0, 2, 2, 3}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*videos)->AppendVideo({}, Shape{1, 2, 2, 3}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(
      HasCode((*videos)->AppendVideo(Span(file), Shape{1, 2, 2, 3}, "not json"),
              StatusCode::kInvalidArgument));
  EXPECT_EQ((*videos)->size(), 0u);

  TensorSpec images;
  images.name = "images";
  images.htype = HType::kImage;
  images.sample_compression = "jpeg";
  auto image_tensor = (*ds)->CreateTensor(images);
  ASSERT_TRUE(Ok(image_tensor));
  EXPECT_TRUE(
      HasCode((*image_tensor)->AppendVideo(Span(file), Shape{1, 2, 2, 3}),
              StatusCode::kInvalidArgument));

  TensorSpec wrong = VideoSpec();
  wrong.name = "v2";
  wrong.htype = HType::kImage;  // mp4 is for video tensors only
  EXPECT_TRUE(HasCode((*ds)->CreateTensor(wrong).status(),
                      StatusCode::kInvalidArgument));
  wrong.htype = HType::kVideo;
  wrong.rank = 3;
  EXPECT_TRUE(HasCode((*ds)->CreateTensor(wrong).status(),
                      StatusCode::kInvalidArgument));
  wrong.rank = -1;
  wrong.dtype = DType::kFloat32;
  EXPECT_TRUE(HasCode((*ds)->CreateTensor(wrong).status(),
                      StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace shoal
