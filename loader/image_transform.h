// Image transforms of the loader: what happens to one image sample between
// its stored bytes (JPEG, PNG) and its slot in a batch. Decode, then
// optionally crop and resize to a fixed size (torchvision's Resize,
// CenterCrop, RandomResizedCrop and RandomCrop), flip left-right at random,
// as RGB or gray uint8.
//
// Images stored as pixels (a tensor of [H, W, C] arrays, tiled or not)
// take the same transforms through ApplyToPixels, which reads only the crop.
//
// Speed is the point: the crop is decoded alone (a JPEG region decode skips
// the work outside it) and, when the crop is at least twice the output size,
// at 1/2, 1/4 or 1/8 scale in the JPEG's DCT domain; one resampling pass
// then writes the final pixels straight into the caller's span. An
// ImageTransformer keeps its scratch buffers between samples, so a worker
// that reuses one does not allocate per sample once warmed up (the codecs'
// own per-call allocations aside: libjpeg's pools, libpng's structs).
//
// Random choices come from the per-sample `seed` alone (SplitMix64, spelled
// out below), so the same seed gives the same bytes on every machine and at
// any thread count. The caller derives the seed from its own (seed, epoch,
// sample index).
//
// Thread-safety: ImageTransform is a plain value and the free functions are
// pure. An ImageTransformer is used by one thread at a time; give each
// worker its own. The codec may be shared (codecs are immutable).
#ifndef SHOAL_LOADER_IMAGE_TRANSFORM_H_
#define SHOAL_LOADER_IMAGE_TRANSFORM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/buffer.h"
#include "base/memory.h"
#include "base/result.h"
#include "base/status.h"
#include "base/types.h"
#include "codecs/image_codec.h"

namespace shoal {

/// What to do to each image of a tensor. The output is always uint8
/// [height, width, channels], channels 1 or 3.
struct ImageTransform {
  enum class Kind {
    /// The whole image at its own size (a ragged tensor). `height` and
    /// `width` must be 0.
    kDecode,
    /// The whole image resized to `height` x `width`; the aspect ratio is
    /// not kept.
    kResize,
    /// torchvision Resize(resize_shorter) then CenterCrop(height, width),
    /// done as one resampling of the matching source rectangle (which may
    /// sit up to about one source pixel from torchvision's, whose Resize
    /// rounds the intermediate size). resize_shorter 0 scales the image
    /// just enough to cover height x width.
    kCenterCrop,
    /// torchvision RandomResizedCrop(size=(height, width), scale=(scale_min,
    /// scale_max), ratio=(ratio_min, ratio_max)): a random rectangle of
    /// area fraction in [scale_min, scale_max] and log-uniform aspect ratio
    /// in [ratio_min, ratio_max], resized to height x width. See
    /// PlanImageCrop() for the exact algorithm and generator.
    kRandomResizedCrop,
    /// torchvision RandomCrop(size=(height, width)) without padding: a
    /// height x width box at a random place, taken as it is (no
    /// resampling). Images smaller than the box are an error, as in
    /// torchvision. On pixel tensors (ApplyToPixels) only the box is read.
    kRandomCrop,
  };
  Kind kind = Kind::kDecode;
  /// kRgb: 3 channels (gray is replicated). kGray: 1 channel (color is
  /// converted with the ITU-R 601 weights of libjpeg and Pillow's "L").
  /// kDefault: 1 for gray images, 3 for color ones, so the channel count
  /// depends on the image. Alpha is always dropped (not composited), as
  /// Pillow's convert("RGB") does.
  ImageDecodeOptions::Channels channels = ImageDecodeOptions::Channels::kRgb;
  uint32_t height = 0;
  uint32_t width = 0;
  /// kCenterCrop only: the shorter side before the crop; 0 or at least
  /// max(height, width).
  uint32_t resize_shorter = 0;
  /// Flip left-right with probability 1/2 (torchvision
  /// RandomHorizontalFlip), decided from the seed.
  bool random_flip = false;
  /// kRandomResizedCrop only; torchvision's defaults.
  /// 0 < scale_min <= scale_max <= 1, 0 < ratio_min <= ratio_max.
  double scale_min = 0.08;
  double scale_max = 1.0;
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
  /// Lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale when the scaled crop
  /// still covers the output size. false forces a full-resolution decode
  /// (the exact reference the scaled path approximates).
  bool allow_dct_scaling = true;

  /// The usual training transform: RandomResizedCrop(size) + flip, RGB.
  static ImageTransform Train(uint32_t size);
  /// The usual evaluation transform: Resize(size * 8 / 7, i.e. 256 for 224)
  /// + CenterCrop(size), RGB.
  static ImageTransform Eval(uint32_t size);
};

/// InvalidArgument naming the first field out of its range.
Status ValidateImageTransform(const ImageTransform& transform);

/// The shape [height, width, channels] (uint8) of the output for an image
/// with header `info`; InvalidArgument for an invalid transform.
Result<Shape> ImageTransformShape(const ImageTransform& transform,
                                  const ImageInfo& info);

/// The output shape when it does not depend on the image (a fixed size and
/// kRgb or kGray), e.g. to size batch buffers up front; nullopt otherwise.
/// Precondition: `transform` is valid.
std::optional<Shape> FixedImageTransformShape(const ImageTransform& transform);

/// Which source pixels a sample's output comes from.
struct ImageCrop {
  /// In the image's own pixels. The whole image for kDecode and kResize.
  ImageRegion box;
  /// The output is mirrored left-right.
  bool flip = false;
};

/// The crop and flip that Apply() uses for an image of `height` x `width`
/// and `seed`; also useful to map annotations (boxes, keypoints) the same
/// way. Precondition: `transform` is valid, height and width >= 1.
///
/// The generator is base/random.h's SplitMix64 with state `seed` (its
/// file comment specifies every draw): uniform(a, b) is Uniform(a, b), an
/// integer in [0, n) is Bounded(n). round() rounds half to
/// even (Python's).
///
/// kRandomResizedCrop is torchvision's get_params: up to 10 attempts of
///   target_area = height * width * uniform(scale_min, scale_max)
///   aspect = exp(uniform(log(ratio_min), log(ratio_max)))
///   w = round(sqrt(target_area * aspect)), h = round(sqrt(target_area /
///   aspect))
/// accepting the first with 0 < w <= width and 0 < h <= height, placed at
/// y = integer in [0, height - h + 1) then x = integer in [0, width - w + 1).
/// Otherwise a centered crop: the whole image if width / height lies within
/// [ratio_min, ratio_max], else the full height (width) with the nearest
/// allowed ratio, w = round(height * ratio_max) (h = round(width /
/// ratio_min)), at y = (height - h) / 2, x = (width - w) / 2 rounded down.
/// kRandomCrop is torchvision's RandomCrop.get_params: the whole image
/// without a draw when it has the output size, else y = integer in
/// [0, height - out_h + 1), then x = integer in [0, width - out_w + 1)
/// (sides clamped to the image, which ImageTransformShape refuses anyway).
/// kCenterCrop: with f = resize_shorter / min(height, width) (or, for
/// resize_shorter 0, max(out_h / height, out_w / width)), the box is
/// round(out_h / f) x round(out_w / f), at most the image, at
/// y = round((height - h) / 2), x = round((width - w) / 2).
/// The flip, when random_flip, is the next draw (the first for other kinds):
/// uniform [0, 1) < 0.5.
ImageCrop PlanImageCrop(const ImageTransform& transform, uint32_t height,
                        uint32_t width, uint64_t seed);

/// What one Apply() did, for tests and metrics.
struct ImageTransformStats {
  ImageCrop crop;
  /// The JPEG DCT scale of the decode (8 = full size; always 8 for PNG).
  uint8_t scale_eighths = 8;
  /// The rectangle decoded, in pixels of the image at that scale.
  ImageRegion decoded;
  /// Whether a resampling pass ran (false when the decode had the output
  /// size already).
  bool resampled = false;
};

/// Applies transforms to encoded images, reusing scratch memory; one per
/// worker thread.
class ImageTransformer {
 public:
  ImageTransformer();
  ~ImageTransformer();
  /// A moved-from transformer may only be destroyed or assigned to.
  ImageTransformer(ImageTransformer&&) noexcept;
  ImageTransformer& operator=(ImageTransformer&&) noexcept;

  /// Charges the scratch this transformer keeps (its decoded pixels, which
  /// grow to the largest crop or image it has seen) to `budget` from now
  /// on, moving the charge from any budget before; null stops charging.
  void ChargeTo(const std::shared_ptr<MemoryBudget>& budget);

  /// Decodes `encoded` with `codec` and transforms it into `out`, which must
  /// hold exactly ImageTransformShape(transform, codec.ReadInfo(encoded))
  /// bytes (InvalidArgument otherwise). Codec errors (Corruption,
  /// Unimplemented, ResourceExhausted) come back unchanged; an invalid
  /// transform is InvalidArgument. On error `out` holds unspecified bytes.
  ///
  /// A JPEG crop is a region decode: damage below the crop's rows is not
  /// seen (see codecs/image_codec.h); full-image transforms read to the end.
  /// 16-bit PNG samples are rounded to 8 bits (v * 255 / 65535) first.
  Status Apply(const ImageCodec& codec, ByteSpan encoded,
               const ImageTransform& transform, uint64_t seed,
               MutableByteSpan out, ImageTransformStats* stats = nullptr);

  /// Reads `box` of a stored pixel array into `out` (box.height x
  /// box.width x the image's channels, C order); e.g. a tensor's
  /// ReadRegionInto, which touches only the tiles and blocks under it.
  using RegionReader =
      std::function<Status(const ImageRegion& box, MutableByteSpan out)>;
  /// Apply() for an image stored as pixels ([height, width, channels] of
  /// uint8 or uint16, channels 1..4, as `image` describes; format, colour
  /// and bit-depth fields are ignored): only the crop is read, through
  /// `read`, straight into `out` when it needs neither resampling nor a
  /// change of channels or depth (kRandomCrop of a matching image). The
  /// same pixels as Apply() on a PNG of the array. Unimplemented for other
  /// dtypes or channel counts; errors of `read` come back unchanged.
  Status ApplyToPixels(const ImageInfo& image, const RegionReader& read,
                       const ImageTransform& transform, uint64_t seed,
                       MutableByteSpan out,
                       ImageTransformStats* stats = nullptr);

 private:
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace shoal

#endif  // SHOAL_LOADER_IMAGE_TRANSFORM_H_
