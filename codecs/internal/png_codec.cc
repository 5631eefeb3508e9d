// "png": the PNG sample codec, on libpng 1.6.
//
// Decode output follows the PNG data model without any display processing:
// gray [H,W,1], gray+alpha [H,W,2], RGB [H,W,3], RGBA [H,W,4]. Palettes
// expand to RGB (RGBA when tRNS is present), tRNS on gray/RGB becomes an
// alpha channel, bit depths 1/2/4 scale to 0..255, 16-bit samples stay
// uint16 in native (little-endian) order. No gamma, background or sBIT is
// applied: a training set wants the stored samples.
//
// Strictness: every CRC error (ancillary and critical, IDAT included) and
// every libpng "benign" error is an error, and the file is read through
// IEND, so a damaged file never decodes silently to a partly wrong image.
//
// libpng reports errors by longjmp. Every libpng call runs inside Guarded(),
// whose callees hold no objects with destructors, so the jump skips nothing;
// the error handler copies the message into per-call state that becomes the
// Status. Nothing is global: each call creates its own png_struct.
#include <png.h>

#include <algorithm>
#include <bit>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "codecs/image_codec.h"

namespace shoal::internal {
namespace {

constexpr bool kLittleEndian = std::endian::native == std::endian::little;
constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// Largest single chunk libpng may allocate (PLTE, tRNS, decompressed text
// and ICC profiles); image data is streamed and never held whole.
constexpr png_alloc_size_t kMaxChunkBytes = png_alloc_size_t{8} << 20;
// Cap on ancillary chunks kept (text, sPLT), so a file of many tiny chunks
// cannot grow memory without bound.
constexpr png_uint_32 kMaxCachedChunks = 1000;

// Ancillary chunks shoal never uses. libpng treats them as unknown and
// discards them (still checking their CRCs), so their parsers, some with
// decompression, never see hostile bytes.
constexpr png_byte kIgnoredChunks[] =
    "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0sBIT\0"
    "sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";
constexpr int kNumIgnoredChunks = 17;

// Per-call state reached from libpng's callbacks. Plain data only: the
// callbacks run under a pending longjmp.
struct CallState {
  const std::byte* in = nullptr;
  size_t in_size = 0;
  size_t pos = 0;
  bool out_of_memory = false;
  char message[256] = {};
  std::vector<std::byte>* sink = nullptr;  // encode output
};

CallState* StateOf(png_structp png) {
  return static_cast<CallState*>(png_get_error_ptr(png));
}

[[noreturn]] void OnError(png_structp png, png_const_charp message) {
  CallState* state = StateOf(png);
  std::snprintf(state->message, sizeof(state->message), "%s",
                message != nullptr ? message : "unknown libpng error");
  png_longjmp(png, 1);
}

// Warnings are either turned into errors (CRC, benign errors) or are about
// ancillary data shoal ignores; nothing goes to stderr.
void OnWarning(png_structp, png_const_charp) {}

void ReadFromMemory(png_structp png, png_bytep data, size_t length) {
  auto* state = static_cast<CallState*>(png_get_io_ptr(png));
  if (length > state->in_size - state->pos) {
    png_error(png, "truncated: data ends inside a chunk");
  }
  std::memcpy(data, state->in + state->pos, length);
  state->pos += length;
}

void WriteToVector(png_structp png, png_bytep data, size_t length) {
  auto* state = static_cast<CallState*>(png_get_io_ptr(png));
  try {
    state->sink->insert(state->sink->end(),
                        reinterpret_cast<const std::byte*>(data),
                        reinterpret_cast<const std::byte*>(data) + length);
  } catch (const std::bad_alloc&) {
    state->out_of_memory = true;
  }
  // Outside the handler: a longjmp out of a catch block would leak the
  // exception object.
  if (state->out_of_memory) png_error(png, "out of memory");
}

void FlushNothing(png_structp) {}

// Runs `body` (which calls libpng) with the longjmp target set; false when
// libpng raised an error. `body` must not hold objects with non-trivial
// destructors across libpng calls.
template <typename Body>
bool Guarded(png_structp png, Body&& body) {
  if (setjmp(png_jmpbuf(png))) return false;
  body();
  return true;
}

uint32_t LoadBigEndian32(const std::byte* p) {
  return (uint32_t{std::to_integer<uint8_t>(p[0])} << 24) |
         (uint32_t{std::to_integer<uint8_t>(p[1])} << 16) |
         (uint32_t{std::to_integer<uint8_t>(p[2])} << 8) |
         uint32_t{std::to_integer<uint8_t>(p[3])};
}

bool HasSignature(ByteSpan bytes) {
  return bytes.size() >= sizeof(kSignature) &&
         std::memcmp(bytes.data(), kSignature, sizeof(kSignature)) == 0;
}

// Owns one read png_struct and its info.
class PngReader {
 public:
  PngReader() = default;
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  ~PngReader() {
    if (png_ != nullptr) png_destroy_read_struct(&png_, &info_, nullptr);
  }

  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

  // Creates the reader over `bytes` and reads every chunk before the image
  // data into info().
  Status Open(ByteSpan bytes, const ImageLimits& limits) {
    state_.in = bytes.data();
    state_.in_size = bytes.size();
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state_, OnError,
                                  OnWarning);
    if (png_ == nullptr) return ResourceExhausted("png: cannot create reader");
    info_ = png_create_info_struct(png_);
    if (info_ == nullptr) return ResourceExhausted("png: cannot create reader");
    const bool ok = Guarded(png_, [&] {
      png_set_read_fn(png_, &state_, ReadFromMemory);
      png_set_user_limits(png_, limits.max_dimension, limits.max_dimension);
      png_set_chunk_malloc_max(png_, kMaxChunkBytes);
      png_set_chunk_cache_max(png_, kMaxCachedChunks);
      png_set_crc_action(png_, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
      png_set_benign_errors(png_, 0);
      png_set_keep_unknown_chunks(png_, PNG_HANDLE_CHUNK_NEVER, kIgnoredChunks,
                                  kNumIgnoredChunks);
      png_read_info(png_, info_);
    });
    return ok ? Status::OK() : Error();
  }

  // Corruption carrying libpng's message; for after a failed Guarded().
  Status Error() const {
    if (state_.out_of_memory) return ResourceExhausted("png: out of memory");
    return Corruption(std::string("png: ") + state_.message);
  }

 private:
  CallState state_;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

// Checks the IHDR dimensions before libpng sees the file, so an image over
// the limits is ResourceExhausted (not a generic libpng error) and nothing
// is allocated for it.
Status CheckDimensions(ByteSpan bytes, const ImageLimits& limits) {
  if (!HasSignature(bytes)) {
    return Corruption("png: missing PNG signature");
  }
  // Signature, IHDR length, "IHDR", width, height.
  if (bytes.size() < 24 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) {
    return Corruption("png: first chunk is not IHDR");
  }
  const uint64_t width = LoadBigEndian32(bytes.data() + 16);
  const uint64_t height = LoadBigEndian32(bytes.data() + 20);
  if (width > limits.max_dimension || height > limits.max_dimension ||
      width * height > limits.max_pixels) {
    return ResourceExhausted(
        "png: image of " + std::to_string(width) + "x" +
        std::to_string(height) + " exceeds the limits (max dimension " +
        std::to_string(limits.max_dimension) + ", max pixels " +
        std::to_string(limits.max_pixels) + ")");
  }
  return Status::OK();
}

ImageInfo InfoOf(const PngReader& reader) {
  png_structp png = reader.png();
  png_infop info = reader.info();
  ImageInfo out;
  out.format = "png";
  out.width = png_get_image_width(png, info);
  out.height = png_get_image_height(png, info);
  out.bit_depth = png_get_bit_depth(png, info);
  out.precision = out.bit_depth;
  out.interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
  out.dtype = out.bit_depth == 16 ? DType::kUInt16 : DType::kUInt8;
  const bool trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  switch (png_get_color_type(png, info)) {
    case PNG_COLOR_TYPE_GRAY:
      out.channels = trns ? 2 : 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      out.channels = 2;
      break;
    case PNG_COLOR_TYPE_PALETTE:
    case PNG_COLOR_TYPE_RGB:
      out.channels = trns ? 4 : 3;
      break;
    default:  // PNG_COLOR_TYPE_RGB_ALPHA; libpng rejects the others
      out.channels = 4;
      break;
  }
  out.colorspace = out.channels <= 2 ? "gray" : "rgb";
  return out;
}

class PngCodec final : public ImageCodec {
 public:
  explicit PngCodec(const ImageLimits& limits) : limits_(limits) {}

  std::string_view name() const override { return "png"; }

  bool Sniff(ByteSpan bytes) const override { return HasSignature(bytes); }

  Result<ImageInfo> ReadInfo(ByteSpan bytes) const override {
    SHOAL_RETURN_IF_ERROR(CheckDimensions(bytes, limits_));
    PngReader reader;
    SHOAL_RETURN_IF_ERROR(reader.Open(bytes, limits_));
    return InfoOf(reader);
  }

  Result<Shape> OutputShape(const ImageInfo& info,
                            const ImageDecodeOptions& options) const override {
    if (options.channels != ImageDecodeOptions::Channels::kDefault) {
      return InvalidArgument(
          "png: only the image's own channels can be decoded (no RGB/gray "
          "conversion)");
    }
    if (options.scale_eighths != 8) {
      return InvalidArgument("png: scaled decode is not supported (scale " +
                             std::to_string(options.scale_eighths) + "/8)");
    }
    if (options.region.has_value()) {
      const ImageRegion& r = *options.region;
      if (r.height == 0 || r.width == 0 ||
          uint64_t{r.y} + r.height > info.height ||
          uint64_t{r.x} + r.width > info.width) {
        return InvalidArgument("png: region " + std::to_string(r.height) + "x" +
                               std::to_string(r.width) + " at (" +
                               std::to_string(r.y) + ", " +
                               std::to_string(r.x) + ") is not inside the " +
                               std::to_string(info.height) + "x" +
                               std::to_string(info.width) + " image");
      }
      return Shape{r.height, r.width, info.channels};
    }
    return Shape{info.height, info.width, info.channels};
  }

  Status Decode(ByteSpan bytes, const ImageDecodeOptions& options,
                MutableByteSpan out) const override {
    SHOAL_RETURN_IF_ERROR(CheckDimensions(bytes, limits_));
    PngReader reader;
    SHOAL_RETURN_IF_ERROR(reader.Open(bytes, limits_));
    const ImageInfo info = InfoOf(reader);
    SHOAL_ASSIGN_OR_RETURN(const Shape shape, OutputShape(info, options));
    SHOAL_ASSIGN_OR_RETURN(const uint64_t out_bytes,
                           shape.ByteSize(info.dtype));
    if (out.size() != out_bytes) {
      return InvalidArgument("png: output holds " + std::to_string(out.size()) +
                             " bytes, the " + shape.ToString() + " " +
                             std::string(DTypeName(info.dtype)) +
                             " image needs " + std::to_string(out_bytes));
    }

    png_structp png = reader.png();
    png_infop png_info = reader.info();
    bool ok = Guarded(png, [&] {
      png_set_expand(png);  // palette to RGB, gray 1/2/4 to 8, tRNS to alpha
      // PNG stores 16-bit samples big-endian; the output is native uint16.
      if (info.bit_depth == 16 && kLittleEndian) png_set_swap(png);
      png_set_interlace_handling(png);
      png_read_update_info(png, png_info);
    });
    if (!ok) return reader.Error();

    const size_t row_bytes =
        size_t{info.width} * info.channels * DTypeSize(info.dtype);
    if (png_get_rowbytes(png, png_info) != row_bytes ||
        png_get_channels(png, png_info) != info.channels) {
      return Internal("png: libpng's output rows (" +
                      std::to_string(png_get_rowbytes(png, png_info)) +
                      " bytes) differ from the expected " +
                      std::to_string(row_bytes));
    }

    // A region is decoded whole into scratch, then copied: Adam7 needs every
    // row anyway, and region reads of PNGs are rare.
    const bool whole =
        !options.region.has_value() || (options.region->height == info.height &&
                                        options.region->width == info.width);
    std::vector<std::byte> scratch;
    std::byte* image = out.data();
    if (!whole) {
      try {
        scratch.resize(row_bytes * info.height);
      } catch (const std::bad_alloc&) {
        return ResourceExhausted("png: out of memory for the region decode");
      }
      image = scratch.data();
    }
    std::vector<png_bytep> rows(info.height);
    for (size_t y = 0; y < rows.size(); ++y) {
      rows[y] = reinterpret_cast<png_bytep>(image + y * row_bytes);
    }
    ok = Guarded(png, [&] {
      png_read_image(png, rows.data());
      // Reads through IEND: this is where the last IDAT's CRC and any
      // damage after the image data are detected.
      png_read_end(png, png_info);
    });
    if (!ok) return reader.Error();

    if (!whole) {
      const ImageRegion& r = *options.region;
      const size_t pixel_bytes = size_t{info.channels} * DTypeSize(info.dtype);
      const size_t region_row = size_t{r.width} * pixel_bytes;
      for (uint32_t y = 0; y < r.height; ++y) {
        std::memcpy(out.data() + y * region_row,
                    image + (size_t{r.y} + y) * row_bytes + r.x * pixel_bytes,
                    region_row);
      }
    }
    return Status::OK();
  }

  Result<Buffer> Encode(const Shape& shape, DType dtype, ByteSpan pixels,
                        const ImageEncodeOptions& options) const override {
    if (shape.rank() != 3 || shape[2] < 1 || shape[2] > 4 || shape[0] < 1 ||
        shape[1] < 1 || shape[0] > PNG_UINT_31_MAX ||
        shape[1] > PNG_UINT_31_MAX) {
      return InvalidArgument("png: cannot encode shape " + shape.ToString() +
                             " (need [H, W, C] with H, W >= 1, C in 1..4)");
    }
    if (dtype != DType::kUInt8 && dtype != DType::kUInt16) {
      return InvalidArgument("png: cannot encode " +
                             std::string(DTypeName(dtype)) +
                             " pixels (uint8 or uint16 only)");
    }
    if (options.compression_level < 0 || options.compression_level > 9) {
      return InvalidArgument("png: compression level " +
                             std::to_string(options.compression_level) +
                             " outside [0, 9]");
    }
    SHOAL_ASSIGN_OR_RETURN(const uint64_t size, shape.ByteSize(dtype));
    if (pixels.size() != size) {
      return InvalidArgument("png: " + std::to_string(pixels.size()) +
                             " pixel bytes for a " + shape.ToString() + " " +
                             std::string(DTypeName(dtype)) + " image, need " +
                             std::to_string(size));
    }
    static constexpr int kColorTypes[] = {
        PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
        PNG_COLOR_TYPE_RGB_ALPHA};
    const int color_type = kColorTypes[shape[2] - 1];
    const int bit_depth = dtype == DType::kUInt16 ? 16 : 8;
    const size_t row_bytes = shape[1] * shape[2] * DTypeSize(dtype);

    std::vector<std::byte> encoded;
    std::vector<png_bytep> rows;
    try {
      // Deflate rarely grows data by more than a small fraction; reserving
      // the raw size avoids most regrowth for photos.
      encoded.reserve(std::min<size_t>(size / 2 + 1024, size_t{64} << 20));
      rows.resize(shape[0]);
    } catch (const std::bad_alloc&) {
      return ResourceExhausted("png: out of memory for encoding");
    }
    for (size_t y = 0; y < rows.size(); ++y) {
      // libpng never writes through row pointers when encoding.
      rows[y] = reinterpret_cast<png_bytep>(
          const_cast<std::byte*>(pixels.data() + y * row_bytes));
    }

    CallState state;
    state.sink = &encoded;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state,
                                              OnError, OnWarning);
    if (png == nullptr) return ResourceExhausted("png: cannot create writer");
    png_infop info = png_create_info_struct(png);
    const bool ok =
        info != nullptr && Guarded(png, [&] {
          png_set_write_fn(png, &state, WriteToVector, FlushNothing);
          png_set_compression_level(png, options.compression_level);
          png_set_IHDR(png, info, static_cast<png_uint_32>(shape[1]),
                       static_cast<png_uint_32>(shape[0]), bit_depth,
                       color_type, PNG_INTERLACE_NONE,
                       PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
          png_write_info(png, info);
          if (bit_depth == 16 && kLittleEndian) png_set_swap(png);
          png_write_image(png, rows.data());
          png_write_end(png, nullptr);
        });
    png_destroy_write_struct(&png, &info);
    if (!ok) {
      if (info == nullptr || state.out_of_memory) {
        return ResourceExhausted("png: out of memory for encoding");
      }
      return InvalidArgument(std::string("png: cannot encode: ") +
                             state.message);
    }
    return Buffer::FromVector(std::move(encoded));
  }

 private:
  ImageLimits limits_;
};

[[maybe_unused]] const bool kRegistered = ImageCodecRegistry::Register(
    "png", [](const ImageLimits& limits) -> std::shared_ptr<const ImageCodec> {
      return std::make_shared<PngCodec>(limits);
    });

}  // namespace
}  // namespace shoal::internal
