// "jpeg": the JPEG sample codec, on libjpeg-turbo. Decoding uses the libjpeg
// API (header-only reads, DCT-domain scaling, jpeg_crop_scanline and
// jpeg_skip_scanlines for regions); encoding uses TurboJPEG's tjCompress2.
//
// Exactness: decodes use the accurate integer IDCT (JDCT_ISLOW) and fancy
// upsampling, so the default output is byte-for-byte what `djpeg -dct int`
// writes. A region decode is byte-for-byte the same rectangle of the full
// decode at the same scale: the crop handed to libjpeg is widened by
// kCropMargin pixels so that the edge replication of the upsampler at the
// crop border never reaches the requested pixels.
//
// Errors: libjpeg reports fatal errors by calling error_exit, which here
// longjmps back into this file (Guard()) and becomes a Status. libjpeg only
// *warns* about damaged entropy-coded data (premature end of data, bad
// Huffman code, extraneous bytes, bogus progression) and then fills in gray
// or stale coefficients; a training set must not silently hold such pixels,
// so these warnings are Corruption errors (IsCorruptDataWarning()). Other
// warnings (unknown JFIF revision, unknown Adobe transform) are ignored. A
// region decode stops reading after the region's last row, so damage below
// the region is not seen; a full decode reads to EOI (jpeg_finish_decompress)
// and reports it.
//
// Unsupported: 12-bit (SOF precision 12) and lossless/hierarchical (SOF3,
// SOF5..) JPEGs give Unimplemented; libjpeg-turbo 2.1 decodes neither.
//
// CMYK and YCCK (Adobe APP14) JPEGs decode to RGB the way Pillow's
// convert("RGB") does (Convert.c cmyk2rgb): with normal CMYK values c, k,
// R = (255 - k) - (c * (255 - k)) / 255 rounded as Pillow rounds. Files with
// an Adobe marker store inverted CMYK (Photoshop's convention, which Pillow
// follows), files without one normal CMYK; the test compares with Pillow.
// Gray output of a CMYK file converts that RGB with libjpeg's own
// rgb->gray weights.
//
// Thread-safety: the codec is immutable. Each thread keeps one
// jpeg_decompress_struct and one TurboJPEG compressor (thread_local), reused
// across calls: creating them costs more than decoding a small image.

// clang-format off
// jpeglib.h uses FILE and size_t without including their
// headers, so <cstdio> must come first.
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <turbojpeg.h>

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "codecs/image_codec.h"

namespace shoal::internal {
namespace {

// Output pixels added on each side of a region's columns before cropping:
// more than the reach of the fancy upsamplers (one chroma sample, at most 2
// output pixels). Without it the region test finds differences at the crop
// border.
constexpr uint32_t kCropMargin = 16;

struct ErrorManager {
  jpeg_error_mgr pub;  // First: libjpeg hands back cinfo->err as this.
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// JWRN_ARITH_BAD_CODE is declared only when jconfig.h enables arithmetic
// decoding under a name jerror.h checks, so it is matched by its text
// ("Corrupt JPEG data: ...") in OnMessage instead.
bool IsCorruptDataWarning(int code) {
  switch (code) {
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      return true;
    default:
      return false;
  }
}

[[noreturn]] void OnError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  err->pub.format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Trace messages (level >= 0) are dropped; see the file comment for warnings.
void OnMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (IsCorruptDataWarning(cinfo->err->msg_code)) OnError(cinfo);
  char message[JMSG_LENGTH_MAX];
  cinfo->err->format_message(cinfo, message);
  if (std::strncmp(message, "Corrupt JPEG data", 17) == 0) OnError(cinfo);
}

// libjpeg would print to stderr; messages reach the caller as Status instead.
void OnOutputMessage(j_common_ptr /*cinfo*/) {}

// One decompressor per thread, with the buffers its decodes reuse.
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  bool created = false;
  std::vector<JSAMPROW> rows;
  std::vector<uint8_t> scratch;

  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = OnError;
    err.pub.emit_message = OnMessage;
    err.pub.output_message = OnOutputMessage;
  }
  ~Decompressor() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }

  // The libjpeg error of the last failed Guard() as a Status.
  Status ErrorStatus() const {
    const std::string message = std::string("jpeg: ") + err.message;
    switch (err.pub.msg_code) {
      case JERR_BAD_PRECISION:
        return Unimplemented(message +
                             " (only 8-bit JPEGs are decoded; 12-bit and "
                             "16-bit samples are not supported)");
      case JERR_SOF_UNSUPPORTED:
        return Unimplemented(message +
                             " (lossless and hierarchical JPEGs are not "
                             "supported)");
      case JERR_IMAGE_TOO_BIG:
      case JERR_OUT_OF_MEMORY:
      case JERR_NO_BACKING_STORE:
        return ResourceExhausted(message);
      default:
        return Corruption(message);
    }
  }
};

// Runs `fn`, turning a libjpeg error inside it into a false return. `fn`
// must own nothing with a destructor: the error longjmps out of it.
template <typename Fn>
bool Guard(Decompressor& d, Fn&& fn) {
  if (setjmp(d.err.jump) != 0) return false;
  fn();
  return true;
}

// Returns the thread's decompressor to its idle state after every call,
// whether it succeeded, failed or longjmped.
class DecodeScope {
 public:
  explicit DecodeScope(Decompressor& d) : d_(d) {}
  ~DecodeScope() { jpeg_abort_decompress(&d_.cinfo); }
  DecodeScope(const DecodeScope&) = delete;
  DecodeScope& operator=(const DecodeScope&) = delete;

 private:
  Decompressor& d_;
};

Result<Decompressor*> ThreadDecompressor() {
  thread_local Decompressor d;
  if (!d.created) {
    if (!Guard(d, [&] { jpeg_create_decompress(&d.cinfo); })) {
      return ResourceExhausted("jpeg: cannot create a decompressor: " +
                               std::string(d.err.message));
    }
    d.created = true;
  }
  return &d;
}

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};

Result<tjhandle> ThreadCompressor() {
  thread_local std::unique_ptr<void, TjDeleter> handle;
  if (handle == nullptr) {
    handle.reset(tjInitCompress());
    if (handle == nullptr) {
      return ResourceExhausted("jpeg: cannot create a compressor");
    }
  }
  return handle.get();
}

std::string ColorspaceName(J_COLOR_SPACE space) {
  switch (space) {
    case JCS_GRAYSCALE:
      return "gray";
    case JCS_YCbCr:
      return "ycbcr";
    case JCS_RGB:
      return "rgb";
    case JCS_CMYK:
      return "cmyk";
    case JCS_YCCK:
      return "ycck";
    default:
      return "other";
  }
}

// Chroma subsampling in J:a:b notation, from the sampling factors of the
// first component relative to the others (which must all be 1x1, and the K
// of CMYK/YCCK like the first).
std::string SubsamplingName(const jpeg_decompress_struct& cinfo) {
  if (cinfo.num_components == 1) return "gray";
  const jpeg_component_info* c = cinfo.comp_info;
  for (int i = 1; i < cinfo.num_components; ++i) {
    const bool is_k = i == 3;
    const int h = is_k ? c[0].h_samp_factor : 1;
    const int v = is_k ? c[0].v_samp_factor : 1;
    if (c[i].h_samp_factor != h || c[i].v_samp_factor != v) return "other";
  }
  const int h = c[0].h_samp_factor, v = c[0].v_samp_factor;
  if (h == 1 && v == 1) return "4:4:4";
  if (h == 2 && v == 1) return "4:2:2";
  if (h == 2 && v == 2) return "4:2:0";
  if (h == 1 && v == 2) return "4:4:0";
  if (h == 4 && v == 1) return "4:1:1";
  return "other";
}

bool IsCmyk(J_COLOR_SPACE space) {
  return space == JCS_CMYK || space == JCS_YCCK;
}

// Pillow's MULDIV255: a * b / 255, rounded.
inline int MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// libjpeg's rgb->gray weights (jdcolor.c), 16-bit fixed point.
inline uint8_t RgbToGray(int r, int g, int b) {
  constexpr int kR = 19595, kG = 38470, kB = 7471, kHalf = 1 << 15;
  return static_cast<uint8_t>((kR * r + kG * g + kB * b + kHalf) >> 16);
}

// Converts `width` CMYK pixels (inverted when `adobe`) to RGB or gray.
void ConvertCmyk(const uint8_t* in, uint32_t width, bool adobe, int channels,
                 uint8_t* out) {
  for (uint32_t x = 0; x < width; ++x, in += 4) {
    const int flip = adobe ? 255 : 0;
    const int nk = 255 - (in[3] ^ flip);
    const int r = nk - MulDiv255(in[0] ^ flip, nk);
    const int g = nk - MulDiv255(in[1] ^ flip, nk);
    const int b = nk - MulDiv255(in[2] ^ flip, nk);
    if (channels == 3) {
      out[0] = static_cast<uint8_t>(r);
      out[1] = static_cast<uint8_t>(g);
      out[2] = static_cast<uint8_t>(b);
      out += 3;
    } else {
      *out++ = RgbToGray(r, g, b);
    }
  }
}

int OutputChannels(const ImageInfo& info, ImageDecodeOptions::Channels want) {
  switch (want) {
    case ImageDecodeOptions::Channels::kRgb:
      return 3;
    case ImageDecodeOptions::Channels::kGray:
      return 1;
    case ImageDecodeOptions::Channels::kDefault:
      break;
  }
  return info.channels;
}

uint32_t ScaledSize(uint32_t size, uint32_t scale_eighths) {
  return static_cast<uint32_t>((uint64_t{size} * scale_eighths + 7) / 8);
}

class JpegCodec final : public ImageCodec {
 public:
  explicit JpegCodec(const ImageLimits& limits) : limits_(limits) {}

  std::string_view name() const override { return "jpeg"; }

  bool Sniff(ByteSpan bytes) const override {
    return bytes.size() >= 3 && bytes[0] == std::byte{0xFF} &&
           bytes[1] == std::byte{0xD8} && bytes[2] == std::byte{0xFF};
  }

  Result<ImageInfo> ReadInfo(ByteSpan bytes) const override {
    SHOAL_ASSIGN_OR_RETURN(Decompressor * d, ThreadDecompressor());
    DecodeScope scope(*d);
    SHOAL_RETURN_IF_ERROR(ReadHeader(*d, bytes));
    return InfoOf(d->cinfo);
  }

  Result<Shape> OutputShape(const ImageInfo& info,
                            const ImageDecodeOptions& options) const override {
    if (options.scale_eighths < 1 || options.scale_eighths > 16) {
      return InvalidArgument("jpeg: scale_eighths " +
                             std::to_string(options.scale_eighths) +
                             " outside [1, 16]");
    }
    const uint32_t height = ScaledSize(info.height, options.scale_eighths);
    const uint32_t width = ScaledSize(info.width, options.scale_eighths);
    const uint64_t channels = OutputChannels(info, options.channels);
    if (!options.region.has_value()) return Shape{height, width, channels};
    const ImageRegion& r = *options.region;
    if (r.height == 0 || r.width == 0 || r.y >= height || r.x >= width ||
        r.height > height - r.y || r.width > width - r.x) {
      return InvalidArgument("jpeg: region " + std::to_string(r.height) + "x" +
                             std::to_string(r.width) + "+" +
                             std::to_string(r.y) + "+" + std::to_string(r.x) +
                             " is empty or outside the " +
                             std::to_string(height) + "x" +
                             std::to_string(width) + " (scaled) image");
    }
    return Shape{r.height, r.width, channels};
  }

  Status Check(ByteSpan bytes, std::vector<std::byte>& scratch) const override {
    // At 1/8 scale each block's inverse DCT is its DC term alone, but the
    // Huffman decoder still reads every AC code to find the next block, so
    // a damaged entropy-coded segment fails here as in a full decode.
    const ImageDecodeOptions eighth{.scale_eighths = 1};
    SHOAL_ASSIGN_OR_RETURN(ImageInfo info, ReadInfo(bytes));
    SHOAL_ASSIGN_OR_RETURN(Shape shape, OutputShape(info, eighth));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, shape.ByteSize(info.dtype));
    scratch.resize(size);
    return Decode(bytes, eighth, scratch);
  }

  Status Decode(ByteSpan bytes, const ImageDecodeOptions& options,
                MutableByteSpan out) const override {
    SHOAL_ASSIGN_OR_RETURN(Decompressor * d, ThreadDecompressor());
    DecodeScope scope(*d);
    SHOAL_RETURN_IF_ERROR(ReadHeader(*d, bytes));
    jpeg_decompress_struct& cinfo = d->cinfo;
    const ImageInfo info = InfoOf(cinfo);
    SHOAL_ASSIGN_OR_RETURN(Shape shape, OutputShape(info, options));
    if (out.size() != shape.num_elements()) {
      return InvalidArgument("jpeg: output holds " +
                             std::to_string(out.size()) + " bytes, the " +
                             shape.ToString() + " image needs " +
                             std::to_string(shape.num_elements()));
    }
    const int channels = static_cast<int>(shape[2]);
    const bool cmyk = IsCmyk(cinfo.jpeg_color_space);
    cinfo.out_color_space =
        cmyk ? JCS_CMYK : (channels == 3 ? JCS_RGB : JCS_GRAYSCALE);
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.scale_num = options.scale_eighths;
    cinfo.scale_denom = 8;

    const uint32_t full_width = ScaledSize(info.width, options.scale_eighths);
    const uint32_t full_height = ScaledSize(info.height, options.scale_eighths);
    const ImageRegion region =
        options.region.value_or(ImageRegion{0, 0, full_height, full_width});
    // The columns handed to jpeg_crop_scanline, widened by the margin.
    JDIMENSION crop_x = region.x > kCropMargin ? region.x - kCropMargin : 0;
    JDIMENSION crop_width =
        std::min(full_width, region.x + region.width + kCropMargin) - crop_x;
    const bool crop = crop_width < full_width;
    const bool started = Guard(*d, [&] {
      jpeg_start_decompress(&cinfo);
      if (crop) jpeg_crop_scanline(&cinfo, &crop_x, &crop_width);
      // Exact: libjpeg-turbo rebuilds the upsampler's context rows after a
      // skip (the region test compares thousands of regions).
      if (region.y > 0) jpeg_skip_scanlines(&cinfo, region.y);
    });
    if (!started) return d->ErrorStatus();
    if (cinfo.output_height != full_height ||
        cinfo.output_width != (crop ? crop_width : full_width) ||
        crop_x > region.x || region.x + region.width > crop_x + crop_width ||
        cinfo.output_scanline != region.y) {
      return Internal("jpeg: libjpeg's output geometry differs from " +
                      shape.ToString());
    }

    auto* dst = reinterpret_cast<uint8_t*>(out.data());
    const size_t row_bytes = size_t{region.width} * channels;
    // Rows libjpeg writes at the region's full width can land in `out`.
    const bool direct = !cmyk && cinfo.output_width == region.width;
    bool read;
    if (direct) {
      // Rows go straight into `out`, many per call as TurboJPEG does.
      d->rows.resize(region.height);
      for (uint32_t y = 0; y < region.height; ++y) {
        d->rows[y] = dst + y * row_bytes;
      }
      read = Guard(*d, [&] {
        JDIMENSION done = 0;
        while (done < region.height) {
          const JDIMENSION n = jpeg_read_scanlines(
              &cinfo, d->rows.data() + done, region.height - done);
          if (n == 0) break;  // Cannot happen with a memory source.
          done += n;
        }
      });
    } else {
      // Several rows a call, as in the direct path: libjpeg makes two rows
      // at a time for 4:2:0 images, and asking for one costs it a copy of
      // the spare row.
      const int in_channels = cinfo.output_components;
      const size_t in_row = size_t{cinfo.output_width} * in_channels;
      constexpr uint32_t kRowsPerRead = 16;
      d->scratch.resize(in_row * kRowsPerRead);
      d->rows.resize(kRowsPerRead);
      for (uint32_t r = 0; r < kRowsPerRead; ++r) {
        d->rows[r] = d->scratch.data() + r * in_row;
      }
      const bool adobe = cinfo.saw_Adobe_marker;
      const size_t skip = size_t{region.x - crop_x} * in_channels;
      read = Guard(*d, [&] {
        for (uint32_t y = 0; y < region.height;) {
          const JDIMENSION n = jpeg_read_scanlines(
              &cinfo, d->rows.data(),
              std::min<uint32_t>(kRowsPerRead, region.height - y));
          if (n == 0) break;  // Cannot happen with a memory source.
          for (JDIMENSION r = 0; r < n; ++r, ++y) {
            const uint8_t* row = d->rows[r] + skip;
            uint8_t* to = dst + y * row_bytes;
            if (cmyk) {
              ConvertCmyk(row, region.width, adobe, channels, to);
            } else {
              std::memcpy(to, row, row_bytes);
            }
          }
        }
      });
    }
    if (!read) return d->ErrorStatus();
    if (cinfo.output_scanline != region.y + region.height) {
      return Internal("jpeg: libjpeg stopped at row " +
                      std::to_string(cinfo.output_scanline));
    }
    // Only a full decode reads to EOI: a region decode has what it needs.
    if (!options.region.has_value() &&
        !Guard(*d, [&] { jpeg_finish_decompress(&cinfo); })) {
      return d->ErrorStatus();
    }
    return Status::OK();
  }

  Result<Buffer> Encode(const Shape& shape, DType dtype, ByteSpan pixels,
                        const ImageEncodeOptions& options) const override {
    if (dtype != DType::kUInt8 || shape.rank() != 3 ||
        (shape[2] != 1 && shape[2] != 3)) {
      return InvalidArgument("jpeg: encodes uint8 [H, W, 1|3] pixels, got " +
                             std::string(DTypeName(dtype)) + " " +
                             shape.ToString());
    }
    if (shape[0] == 0 || shape[1] == 0 || shape[0] > JPEG_MAX_DIMENSION ||
        shape[1] > JPEG_MAX_DIMENSION) {
      return InvalidArgument("jpeg: cannot encode a " + shape.ToString() +
                             " image (sides 1.." +
                             std::to_string(JPEG_MAX_DIMENSION) + ")");
    }
    if (pixels.size() != shape.num_elements()) {
      return InvalidArgument("jpeg: " + std::to_string(pixels.size()) +
                             " bytes of pixels for shape " + shape.ToString());
    }
    if (options.quality < 1 || options.quality > 100) {
      return InvalidArgument("jpeg: quality " +
                             std::to_string(options.quality) +
                             " outside [1, 100]");
    }
    int subsampling;
    if (options.subsampling == "4:4:4") {
      subsampling = TJSAMP_444;
    } else if (options.subsampling == "4:2:2") {
      subsampling = TJSAMP_422;
    } else if (options.subsampling == "4:2:0") {
      subsampling = TJSAMP_420;
    } else if (options.subsampling == "gray") {
      subsampling = TJSAMP_GRAY;
    } else {
      return InvalidArgument("jpeg: unknown subsampling '" +
                             options.subsampling +
                             "' (known: 4:4:4, 4:2:2, 4:2:0, gray)");
    }
    const bool gray_input = shape[2] == 1;
    // libjpeg cannot make color planes from one gray channel.
    if (gray_input) subsampling = TJSAMP_GRAY;
    SHOAL_ASSIGN_OR_RETURN(tjhandle tj, ThreadCompressor());
    unsigned char* jpeg = nullptr;
    unsigned long jpeg_size = 0;
    const int width = static_cast<int>(shape[1]);
    const int rc = tjCompress2(
        tj, reinterpret_cast<const unsigned char*>(pixels.data()), width,
        width * static_cast<int>(shape[2]), static_cast<int>(shape[0]),
        gray_input ? TJPF_GRAY : TJPF_RGB, &jpeg, &jpeg_size, subsampling,
        options.quality, TJFLAG_ACCURATEDCT);
    std::shared_ptr<unsigned char> owner(jpeg, [](unsigned char* p) {
      if (p != nullptr) tjFree(p);
    });
    if (rc != 0) {
      return Internal(std::string("jpeg: encoding failed: ") +
                      tjGetErrorStr2(tj));
    }
    return Buffer::FromOwner(owner, reinterpret_cast<std::byte*>(jpeg),
                             jpeg_size);
  }

 private:
  // Reads the header into d->cinfo and checks it against the limits, before
  // libjpeg allocates anything sized by it.
  Status ReadHeader(Decompressor& d, ByteSpan bytes) const {
    if (bytes.empty()) return Corruption("jpeg: empty input");
    jpeg_decompress_struct& cinfo = d.cinfo;
    int rc = JPEG_SUSPENDED;
    if (!Guard(d, [&] {
          jpeg_mem_src(&cinfo, reinterpret_cast<const uint8_t*>(bytes.data()),
                       static_cast<unsigned long>(bytes.size()));
          rc = jpeg_read_header(&cinfo, TRUE);
        })) {
      return d.ErrorStatus();
    }
    if (rc != JPEG_HEADER_OK) return Corruption("jpeg: no image in the data");
    if (cinfo.data_precision != 8) {
      return Unimplemented("jpeg: " + std::to_string(cinfo.data_precision) +
                           "-bit JPEG is not supported (8-bit only)");
    }
    const uint32_t height = cinfo.image_height, width = cinfo.image_width;
    if (height == 0 || width == 0) {
      return Corruption("jpeg: image of size " + std::to_string(height) + "x" +
                        std::to_string(width));
    }
    if (height > limits_.max_dimension || width > limits_.max_dimension ||
        uint64_t{height} * width > limits_.max_pixels) {
      return ResourceExhausted("jpeg: " + std::to_string(height) + "x" +
                               std::to_string(width) +
                               " image exceeds the limits (side " +
                               std::to_string(limits_.max_dimension) + ", " +
                               std::to_string(limits_.max_pixels) + " pixels)");
    }
    if (cinfo.num_components != 1 && cinfo.num_components != 3 &&
        cinfo.num_components != 4) {
      return Unimplemented("jpeg: " + std::to_string(cinfo.num_components) +
                           "-component JPEG is not supported");
    }
    // Multi-scan images buffer every coefficient (2 bytes per sample, at
    // most 4 full-size components); libjpeg's pool is capped a little above
    // that (jmemnobs honors the cap and fails with JERR_NO_BACKING_STORE),
    // so memory stays proportional to the checked dimensions.
    cinfo.mem->max_memory_to_use = static_cast<long>(
        uint64_t{height + 64} * (width + 64) * 8 + (64 << 20));
    return Status::OK();
  }

  static ImageInfo InfoOf(const jpeg_decompress_struct& cinfo) {
    ImageInfo info;
    info.format = "jpeg";
    info.height = cinfo.image_height;
    info.width = cinfo.image_width;
    info.channels = cinfo.num_components == 1 ? 1 : 3;
    info.dtype = DType::kUInt8;
    info.colorspace = ColorspaceName(cinfo.jpeg_color_space);
    info.subsampling = SubsamplingName(cinfo);
    info.progressive = cinfo.progressive_mode;
    info.arithmetic = cinfo.arith_code;
    info.precision = cinfo.data_precision;
    return info;
  }

  ImageLimits limits_;
};

[[maybe_unused]] const bool kRegistered = ImageCodecRegistry::Register(
    "jpeg", [](const ImageLimits& limits) -> std::shared_ptr<const ImageCodec> {
      return std::make_shared<JpegCodec>(limits);
    });

}  // namespace
}  // namespace shoal::internal
