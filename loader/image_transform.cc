// Image transforms (see image_transform.h): crop planning, the JPEG path
// (region decode at a DCT scale) and the generic path (full decode, channel
// conversion), both ending in one resampling pass into the caller's span.
#include "loader/image_transform.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "base/random.h"
#include "loader/internal/resize.h"

namespace shoal {
namespace {

using Channels = ImageDecodeOptions::Channels;
using internal::kResizeSourceSlack;
using internal::PixelView;

// Largest output side: the JPEG limit, and small enough that a resize's
// weight tables and rows stay modest.
constexpr uint32_t kMaxSide = 65535;

// DCT scales tried, smallest first. libjpeg-turbo has SIMD IDCTs for these
// (and full size) only; measured on 500x400 q90 4:2:0 JPEGs, 3/8 decodes
// slower than 4/8, and 5/8..7/8 take 1.5-2.3x the time of a full decode.
constexpr uint8_t kDctScales[] = {1, 2, 4};

// Python's round(): half to even, whatever the FPU rounding mode.
double RoundHalfEven(double x) {
  const double floor = std::floor(x);
  const double fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return std::fmod(floor, 2.0) == 0 ? floor : floor + 1;
}

// Callers keep values finite and non-negative.
uint32_t ClampSide(double v, uint32_t max) {
  return static_cast<uint32_t>(std::clamp(v, 1.0, static_cast<double>(max)));
}

ImageRegion RandomResizedBox(const ImageTransform& t, uint32_t height,
                             uint32_t width, SplitMix64& rng) {
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(t.ratio_min);
  const double log_max = std::log(t.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.Uniform(t.scale_min, t.scale_max);
    const double aspect = std::exp(rng.Uniform(log_min, log_max));
    const double w = RoundHalfEven(std::sqrt(target_area * aspect));
    const double h = RoundHalfEven(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      ImageRegion box;
      box.height = static_cast<uint32_t>(h);
      box.width = static_cast<uint32_t>(w);
      box.y = static_cast<uint32_t>(rng.Bounded(height - box.height + 1));
      box.x = static_cast<uint32_t>(rng.Bounded(width - box.width + 1));
      return box;
    }
  }
  // torchvision's fallback. Its sides can round to 0 or past the image
  // only for ratios far outside the image's shape; clamped here.
  const double in_ratio = static_cast<double>(width) / height;
  ImageRegion box{0, 0, height, width};
  if (in_ratio < t.ratio_min) {
    box.height = ClampSide(RoundHalfEven(width / t.ratio_min), height);
  } else if (in_ratio > t.ratio_max) {
    box.width = ClampSide(RoundHalfEven(height * t.ratio_max), width);
  }
  box.y = (height - box.height) / 2;
  box.x = (width - box.width) / 2;
  return box;
}

// torchvision RandomCrop.get_params: the row first, then the column; no
// draw when the box is the whole image.
ImageRegion RandomBox(const ImageTransform& t, uint32_t height, uint32_t width,
                      SplitMix64& rng) {
  ImageRegion box;
  box.height = std::min(t.height, height);
  box.width = std::min(t.width, width);
  if (box.height == height && box.width == width) return box;
  box.y = static_cast<uint32_t>(rng.Bounded(height - box.height + 1));
  box.x = static_cast<uint32_t>(rng.Bounded(width - box.width + 1));
  return box;
}

ImageRegion CenterBox(const ImageTransform& t, uint32_t height,
                      uint32_t width) {
  const double f =
      t.resize_shorter > 0
          ? static_cast<double>(t.resize_shorter) / std::min(height, width)
          : std::max(static_cast<double>(t.height) / height,
                     static_cast<double>(t.width) / width);
  ImageRegion box;
  box.height = ClampSide(RoundHalfEven(t.height / f), height);
  box.width = ClampSide(RoundHalfEven(t.width / f), width);
  box.y = static_cast<uint32_t>(RoundHalfEven((height - box.height) / 2.0));
  box.x = static_cast<uint32_t>(RoundHalfEven((width - box.width) / 2.0));
  return box;
}

int OutputChannels(Channels channels, const ImageInfo& info) {
  switch (channels) {
    case Channels::kRgb:
      return 3;
    case Channels::kGray:
      return 1;
    case Channels::kDefault:
      break;
  }
  return info.channels <= 2 ? 1 : 3;
}

uint32_t ScaledSize(uint32_t size, uint32_t scale_eighths) {
  return static_cast<uint32_t>((uint64_t{size} * scale_eighths + 7) / 8);
}

// The box in the pixels of the image decoded at `scale` (edges rounded to
// the nearest scaled pixel, at least one pixel). libjpeg's scaled pixel i
// covers source pixels [8i/s, 8(i+1)/s).
ImageRegion ScaledBox(const ImageRegion& box, const ImageInfo& info,
                      uint32_t scale) {
  if (scale == 8) return box;
  auto edge = [scale](uint64_t v, uint32_t limit) {
    return static_cast<uint32_t>(
        std::min<uint64_t>((v * scale + 4) / 8, limit));
  };
  const uint32_t height = ScaledSize(info.height, scale);
  const uint32_t width = ScaledSize(info.width, scale);
  ImageRegion scaled;
  scaled.y = std::min(edge(box.y, height), height - 1);
  scaled.x = std::min(edge(box.x, width), width - 1);
  scaled.height =
      std::max(edge(uint64_t{box.y} + box.height, height), scaled.y + 1) -
      scaled.y;
  scaled.width =
      std::max(edge(uint64_t{box.x} + box.width, width), scaled.x + 1) -
      scaled.x;
  return scaled;
}

// The smallest DCT scale at which the crop still covers the output, so the
// resampling after it only shrinks (never enlarges because of the scaling).
uint8_t PickDctScale(const ImageRegion& box, const ImageInfo& info,
                     uint32_t out_height, uint32_t out_width) {
  for (uint8_t scale : kDctScales) {
    const ImageRegion scaled = ScaledBox(box, info, scale);
    if (scaled.height >= out_height && scaled.width >= out_width) return scale;
  }
  return 8;
}

// Scratch only grows, so a warmed-up transformer does not allocate.
Result<uint8_t*> Grow(std::vector<uint8_t>& v, size_t n) {
  try {
    if (v.size() < n) v.resize(n);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("image transform: out of memory for " +
                             std::to_string(n) + " bytes of scratch");
  }
  return v.data();
}

Status CheckOutput(const Shape& shape, MutableByteSpan out) {
  if (out.size() == shape.num_elements()) return Status::OK();
  return InvalidArgument("image transform: output holds " +
                         std::to_string(out.size()) + " bytes, the " +
                         shape.ToString() + " result needs " +
                         std::to_string(shape.num_elements()));
}

// The output shape of one Apply, checked against `out`, and its crop (in
// `s`, reset first).
Result<Shape> Begin(const ImageTransform& transform, const ImageInfo& info,
                    uint64_t seed, MutableByteSpan out,
                    ImageTransformStats& s) {
  SHOAL_ASSIGN_OR_RETURN(const Shape shape,
                         ImageTransformShape(transform, info));
  SHOAL_RETURN_IF_ERROR(CheckOutput(shape, out));
  s = ImageTransformStats{};
  s.crop = PlanImageCrop(transform, info.height, info.width, seed);
  return shape;
}

MutableByteSpan AsMutable(uint8_t* data, size_t size) {
  return {reinterpret_cast<std::byte*>(data), size};
}

}  // namespace

ImageTransform ImageTransform::Train(uint32_t size) {
  ImageTransform t;
  t.kind = Kind::kRandomResizedCrop;
  t.height = t.width = size;
  t.random_flip = true;
  return t;
}

ImageTransform ImageTransform::Eval(uint32_t size) {
  ImageTransform t;
  t.kind = Kind::kCenterCrop;
  t.height = t.width = size;
  t.resize_shorter = static_cast<uint32_t>((uint64_t{size} * 8 + 3) / 7);
  return t;
}

Status ValidateImageTransform(const ImageTransform& t) {
  using Kind = ImageTransform::Kind;
  if (t.kind != Kind::kDecode && t.kind != Kind::kResize &&
      t.kind != Kind::kCenterCrop && t.kind != Kind::kRandomResizedCrop &&
      t.kind != Kind::kRandomCrop) {
    return InvalidArgument("image transform: unknown kind");
  }
  if (t.channels != Channels::kDefault && t.channels != Channels::kRgb &&
      t.channels != Channels::kGray) {
    return InvalidArgument("image transform: unknown channels");
  }
  // Messages are built on failure only: Apply() validates every sample.
  auto size = [&t] {
    return std::to_string(t.height) + "x" + std::to_string(t.width);
  };
  if (t.kind == Kind::kDecode) {
    if (t.height != 0 || t.width != 0) {
      return InvalidArgument(
          "image transform: decode keeps each image's size; "
          "got output size " +
          size());
    }
  } else if (t.height == 0 || t.width == 0 || t.height > kMaxSide ||
             t.width > kMaxSide) {
    return InvalidArgument("image transform: output size " + size() +
                           " outside 1.." + std::to_string(kMaxSide));
  }
  if (t.kind == Kind::kCenterCrop) {
    if (t.resize_shorter != 0 &&
        t.resize_shorter < std::max(t.height, t.width)) {
      return InvalidArgument("image transform: resize_shorter " +
                             std::to_string(t.resize_shorter) +
                             " is smaller than the " + size() + " crop");
    }
  } else if (t.resize_shorter != 0) {
    return InvalidArgument(
        "image transform: resize_shorter applies to center crops only");
  }
  if (t.kind == Kind::kRandomResizedCrop) {
    if (!(t.scale_min > 0 && t.scale_min <= t.scale_max && t.scale_max <= 1)) {
      return InvalidArgument(
          "image transform: scale [" + std::to_string(t.scale_min) + ", " +
          std::to_string(t.scale_max) + "] not within (0, 1]");
    }
    // Finite and positive: the log-uniform draw needs both.
    if (!(t.ratio_min > 0 && t.ratio_min <= t.ratio_max &&
          std::isfinite(t.ratio_max))) {
      return InvalidArgument(
          "image transform: ratio [" + std::to_string(t.ratio_min) + ", " +
          std::to_string(t.ratio_max) + "] is not a finite positive range");
    }
  }
  return Status::OK();
}

Result<Shape> ImageTransformShape(const ImageTransform& transform,
                                  const ImageInfo& info) {
  SHOAL_RETURN_IF_ERROR(ValidateImageTransform(transform));
  const uint64_t channels = OutputChannels(transform.channels, info);
  if (transform.kind == ImageTransform::Kind::kDecode) {
    return Shape{info.height, info.width, channels};
  }
  if (transform.kind == ImageTransform::Kind::kRandomCrop &&
      (info.height < transform.height || info.width < transform.width)) {
    return InvalidArgument(
        "image transform: a " + std::to_string(transform.height) + "x" +
        std::to_string(transform.width) +
        " random crop needs an image at "
        "least that large, this one is " +
        std::to_string(info.height) + "x" + std::to_string(info.width));
  }
  return Shape{transform.height, transform.width, channels};
}

std::optional<Shape> FixedImageTransformShape(const ImageTransform& transform) {
  if (transform.kind == ImageTransform::Kind::kDecode ||
      transform.channels == Channels::kDefault) {
    return std::nullopt;
  }
  return Shape{transform.height, transform.width,
               transform.channels == Channels::kRgb ? 3u : 1u};
}

ImageCrop PlanImageCrop(const ImageTransform& transform, uint32_t height,
                        uint32_t width, uint64_t seed) {
  SplitMix64 rng(seed);
  ImageCrop crop;
  crop.box = ImageRegion{0, 0, height, width};
  switch (transform.kind) {
    case ImageTransform::Kind::kCenterCrop:
      crop.box = CenterBox(transform, height, width);
      break;
    case ImageTransform::Kind::kRandomResizedCrop:
      crop.box = RandomResizedBox(transform, height, width, rng);
      break;
    case ImageTransform::Kind::kRandomCrop:
      crop.box = RandomBox(transform, height, width, rng);
      break;
    case ImageTransform::Kind::kDecode:
    case ImageTransform::Kind::kResize:
      break;
  }
  if (transform.random_flip) crop.flip = rng.Uniform() < 0.5;
  return crop;
}

struct ImageTransformer::Scratch {
  internal::Resizer resizer;
  // Decoded pixels before the resampling (+ kResizeSourceSlack).
  std::vector<uint8_t> decoded;
  // A whole non-JPEG image in the codec's own layout (+ kResizeSourceSlack).
  std::vector<uint8_t> full;
  // Where the capacity of `decoded` and `full` is charged, and how much.
  std::shared_ptr<MemoryBudget> budget;
  int64_t charged = 0;

  // Brings the charge in line with the buffers' capacity.
  void Account() {
    if (budget == nullptr) return;
    const auto held =
        static_cast<int64_t>(decoded.capacity() + full.capacity());
    if (held != charged) budget->Charge(held - charged);
    charged = held;
  }
  ~Scratch() {
    if (budget != nullptr) budget->Charge(-charged);
  }

  Status ApplyJpeg(const ImageCodec& codec, ByteSpan encoded,
                   const ImageInfo& info, const ImageTransform& transform,
                   const ImageCrop& crop, const Shape& shape,
                   MutableByteSpan out, ImageTransformStats& stats);
  Status ApplyGeneric(const ImageCodec& codec, ByteSpan encoded,
                      const ImageInfo& info, const ImageCrop& crop,
                      const Shape& shape, MutableByteSpan out,
                      ImageTransformStats& stats);
  // The crop of `image` (image_width pixels of image_channels a row, uint8
  // or uint16) to `out`: channels converted, resampled, flipped.
  Status FromPixels(const uint8_t* image, uint32_t image_width,
                    int image_channels, bool sixteen, const ImageCrop& crop,
                    const Shape& shape, MutableByteSpan out,
                    ImageTransformStats& stats);
};

ImageTransformer::ImageTransformer() : scratch_(std::make_unique<Scratch>()) {}

// Called per sample by the loader: a pointer comparison unless the budget
// changes.
void ImageTransformer::ChargeTo(const std::shared_ptr<MemoryBudget>& budget) {
  Scratch& s = *scratch_;
  if (s.budget == budget) return;
  if (s.budget != nullptr) s.budget->Charge(-s.charged);
  s.budget = budget;
  s.charged = 0;
  s.Account();
}
ImageTransformer::~ImageTransformer() = default;
ImageTransformer::ImageTransformer(ImageTransformer&&) noexcept = default;
ImageTransformer& ImageTransformer::operator=(ImageTransformer&&) noexcept =
    default;

Status ImageTransformer::Apply(const ImageCodec& codec, ByteSpan encoded,
                               const ImageTransform& transform, uint64_t seed,
                               MutableByteSpan out,
                               ImageTransformStats* stats) {
  SHOAL_ASSIGN_OR_RETURN(const ImageInfo info, codec.ReadInfo(encoded));
  ImageTransformStats local;
  ImageTransformStats& s = stats != nullptr ? *stats : local;
  SHOAL_ASSIGN_OR_RETURN(const Shape shape,
                         Begin(transform, info, seed, out, s));
  const Status status =
      codec.name() == "jpeg"
          ? scratch_->ApplyJpeg(codec, encoded, info, transform, s.crop, shape,
                                out, s)
          : scratch_->ApplyGeneric(codec, encoded, info, s.crop, shape, out, s);
  scratch_->Account();
  return status;
}

Status ImageTransformer::Scratch::ApplyJpeg(
    const ImageCodec& codec, ByteSpan encoded, const ImageInfo& info,
    const ImageTransform& transform, const ImageCrop& crop, const Shape& shape,
    MutableByteSpan out, ImageTransformStats& stats) {
  const uint32_t out_height = static_cast<uint32_t>(shape[0]);
  const uint32_t out_width = static_cast<uint32_t>(shape[1]);
  const int channels = static_cast<int>(shape[2]);
  ImageDecodeOptions options;
  options.channels = channels == 3 ? Channels::kRgb : Channels::kGray;
  if (transform.allow_dct_scaling) {
    options.scale_eighths = PickDctScale(crop.box, info, out_height, out_width);
  }
  const ImageRegion region = ScaledBox(crop.box, info, options.scale_eighths);
  // A whole-image decode reads to the end of the data, so damage anywhere
  // in it is reported.
  if (region.height != ScaledSize(info.height, options.scale_eighths) ||
      region.width != ScaledSize(info.width, options.scale_eighths)) {
    options.region = region;
  }
  stats.scale_eighths = options.scale_eighths;
  stats.decoded = region;
  if (region.height == out_height && region.width == out_width) {
    SHOAL_RETURN_IF_ERROR(codec.Decode(encoded, options, out));
    if (crop.flip) {
      internal::FlipLeftRight(reinterpret_cast<uint8_t*>(out.data()),
                              out_height, out_width, channels);
    }
    return Status::OK();
  }
  const size_t bytes = size_t{region.height} * region.width * channels;
  SHOAL_ASSIGN_OR_RETURN(uint8_t* const pixels,
                         Grow(decoded, bytes + kResizeSourceSlack));
  SHOAL_RETURN_IF_ERROR(
      codec.Decode(encoded, options, AsMutable(pixels, bytes)));
  SHOAL_RETURN_IF_ERROR(
      resizer.Resize(PixelView{pixels, size_t{region.width} * channels,
                               region.height, region.width, channels},
                     out_height, out_width, crop.flip,
                     reinterpret_cast<uint8_t*>(out.data())));
  stats.resampled = true;
  return Status::OK();
}

Status ImageTransformer::Scratch::ApplyGeneric(
    const ImageCodec& codec, ByteSpan encoded, const ImageInfo& info,
    const ImageCrop& crop, const Shape& shape, MutableByteSpan out,
    ImageTransformStats& stats) {
  const ImageDecodeOptions options;
  SHOAL_ASSIGN_OR_RETURN(const Shape full_shape,
                         codec.OutputShape(info, options));
  SHOAL_ASSIGN_OR_RETURN(const uint64_t full_bytes,
                         full_shape.ByteSize(info.dtype));
  const bool sixteen = info.dtype == DType::kUInt16;
  if (full_shape.rank() != 3 || full_shape[0] != info.height ||
      full_shape[1] != info.width || full_shape[2] != info.channels ||
      info.channels < 1 || info.channels > 4 ||
      (!sixteen && info.dtype != DType::kUInt8)) {
    return Unimplemented("image transform: " + std::string(codec.name()) +
                         " decodes " + full_shape.ToString() + " " +
                         std::string(DTypeName(info.dtype)) +
                         " (need [H, W, 1..4] uint8 or uint16)");
  }
  stats.decoded = ImageRegion{0, 0, info.height, info.width};
  const ImageRegion& box = crop.box;
  const bool whole = box.height == info.height && box.width == info.width;
  if (whole && !sixteen && info.channels == shape[2] &&
      box.height == shape[0] && box.width == shape[1]) {
    // Already the output's layout: no copy.
    SHOAL_RETURN_IF_ERROR(codec.Decode(encoded, options, out));
    if (crop.flip) {
      internal::FlipLeftRight(reinterpret_cast<uint8_t*>(out.data()),
                              box.height, box.width, info.channels);
    }
    return Status::OK();
  }
  SHOAL_ASSIGN_OR_RETURN(uint8_t* const image,
                         Grow(full, full_bytes + kResizeSourceSlack));
  SHOAL_RETURN_IF_ERROR(
      codec.Decode(encoded, options, AsMutable(image, full_bytes)));
  return FromPixels(image, info.width, info.channels, sixteen, crop, shape, out,
                    stats);
}

Status ImageTransformer::Scratch::FromPixels(
    const uint8_t* image, uint32_t image_width, int image_channels,
    bool sixteen, const ImageCrop& crop, const Shape& shape,
    MutableByteSpan out, ImageTransformStats& stats) {
  const uint32_t out_height = static_cast<uint32_t>(shape[0]);
  const uint32_t out_width = static_cast<uint32_t>(shape[1]);
  const int channels = static_cast<int>(shape[2]);
  const ImageRegion& box = crop.box;
  const bool resample = box.height != out_height || box.width != out_width;
  uint8_t* const result = reinterpret_cast<uint8_t*>(out.data());
  if (resample && !sixteen && image_channels == channels) {
    // The crop is resampled where it lies.
    const size_t stride = size_t{image_width} * channels;
    SHOAL_RETURN_IF_ERROR(resizer.Resize(
        PixelView{image + box.y * stride + size_t{box.x} * channels, stride,
                  box.height, box.width, channels},
        out_height, out_width, crop.flip, result));
    stats.resampled = true;
    return Status::OK();
  }
  uint8_t* converted = result;
  if (resample) {
    SHOAL_ASSIGN_OR_RETURN(
        converted, Grow(decoded, size_t{box.height} * box.width * channels +
                                     kResizeSourceSlack));
  }
  internal::ConvertPixels(image, sixteen, image_width, image_channels, box.y,
                          box.x, box.height, box.width, channels, converted);
  if (resample) {
    SHOAL_RETURN_IF_ERROR(
        resizer.Resize(PixelView{converted, size_t{box.width} * channels,
                                 box.height, box.width, channels},
                       out_height, out_width, crop.flip, result));
    stats.resampled = true;
    return Status::OK();
  }
  if (crop.flip) {
    internal::FlipLeftRight(result, out_height, out_width, channels);
  }
  return Status::OK();
}

Status ImageTransformer::ApplyToPixels(const ImageInfo& image,
                                       const RegionReader& read,
                                       const ImageTransform& transform,
                                       uint64_t seed, MutableByteSpan out,
                                       ImageTransformStats* stats) {
  const bool sixteen = image.dtype == DType::kUInt16;
  if ((!sixteen && image.dtype != DType::kUInt8) || image.channels < 1 ||
      image.channels > 4) {
    return Unimplemented("image transform: pixels of " +
                         std::to_string(image.channels) + " channels of " +
                         std::string(DTypeName(image.dtype)) +
                         " (need [H, W, 1..4] or [H, W] of uint8 or uint16)");
  }
  ImageTransformStats local;
  ImageTransformStats& s = stats != nullptr ? *stats : local;
  SHOAL_ASSIGN_OR_RETURN(const Shape shape,
                         Begin(transform, image, seed, out, s));
  s.decoded = s.crop.box;
  const ImageRegion& box = s.crop.box;
  if (!sixteen && image.channels == shape[2] && box.height == shape[0] &&
      box.width == shape[1]) {
    // Only the crop is read, straight into its slot.
    SHOAL_RETURN_IF_ERROR(read(box, out));
    if (s.crop.flip) {
      internal::FlipLeftRight(reinterpret_cast<uint8_t*>(out.data()),
                              box.height, box.width, image.channels);
    }
    return Status::OK();
  }
  const size_t bytes =
      size_t{box.height} * box.width * image.channels * (sixteen ? 2 : 1);
  Scratch& scratch = *scratch_;
  Result<uint8_t*> pixels = Grow(scratch.full, bytes + kResizeSourceSlack);
  Status status = pixels.status();
  if (status.ok()) status = read(box, AsMutable(*pixels, bytes));
  if (status.ok()) {
    ImageCrop in_place = s.crop;
    in_place.box = ImageRegion{0, 0, box.height, box.width};
    status = scratch.FromPixels(*pixels, box.width, image.channels, sixteen,
                                in_place, shape, out, s);
  }
  scratch.Account();
  return status;
}

}  // namespace shoal
