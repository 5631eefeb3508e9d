#include "loader/internal/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <limits>
#include <optional>
#include <string_view>

#include "loader/internal/array_bytes.h"

namespace shoal::internal {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
// Data starts at a multiple of this, so that it can be mapped and used in
// place with any element alignment.
constexpr size_t kAlignment = 64;
// A header for any array this reader accepts is under 2 KB; anything far
// larger is not a real header, and is refused before it is read.
constexpr uint64_t kMaxHeaderBytes = 64 * 1024;

// Closes the descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  /// Closes now, reporting the error that a deferred write may surface.
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string ShapeRepr(std::span<const uint64_t> shape) {
  // Python tuple syntax: "()", "(5,)", "(28, 28)".
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

Status WriteAll(int fd, ByteSpan bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path, errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return Status::OK();
}

// What the header dict says.
struct HeaderDict {
  std::string descr;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
};

// Parses the header dict: the subset of Python literal syntax that NumPy
// writes (string keys; string, bool and tuple-of-int values). NumPy itself
// uses ast.literal_eval, so anything outside the subset is refused here
// rather than guessed at.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path)
      : text_(text), path_(path) {}

  Result<HeaderDict> Parse() {
    HeaderDict header;
    bool has_descr = false, has_fortran = false, has_shape = false;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    while (!Consume('}')) {
      SHOAL_ASSIGN_OR_RETURN(std::string key, ParseString());
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after '" + key + "'");
      SkipSpace();
      if (key == "descr" && !has_descr) {
        if (Peek() == '[') {
          return Unimplemented(path_ + ": structured dtypes are not supported");
        }
        SHOAL_ASSIGN_OR_RETURN(header.descr, ParseString());
        has_descr = true;
      } else if (key == "fortran_order" && !has_fortran) {
        SHOAL_ASSIGN_OR_RETURN(header.fortran_order, ParseBool());
        has_fortran = true;
      } else if (key == "shape" && !has_shape) {
        SHOAL_ASSIGN_OR_RETURN(header.shape, ParseShape());
        has_shape = true;
      } else {
        return Error("unexpected or repeated key '" + key + "'");
      }
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != '}') {
        return Error("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after '}'");
    if (!has_descr || !has_fortran || !has_shape) {
      return Error("needs the keys 'descr', 'fortran_order' and 'shape'");
    }
    return header;
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  void SkipSpace() {
    while (Peek() == ' ' || Peek() == '\n' || Peek() == '\t' || Peek() == '\r')
      ++pos_;
  }

  // A quoted string without escapes (no key or dtype NumPy writes has any).
  Result<std::string> ParseString() {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a string");
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return Error("unterminated string");
    std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
    if (value.find('\\') != std::string::npos) {
      return Error("escapes in strings are not supported");
    }
    pos_ = end + 1;
    return value;
  }

  Result<bool> ParseBool() {
    if (ConsumeWord("True")) return true;
    if (ConsumeWord("False")) return false;
    return Error("'fortran_order' must be True or False");
  }

  // "()", "(5,)", "(2, 3)", with an optional trailing comma and the "L"
  // suffix of files written by Python 2.
  Result<std::vector<uint64_t>> ParseShape() {
    std::vector<uint64_t> shape;
    if (!Consume('(')) return Error("'shape' must be a tuple");
    SkipSpace();
    while (!Consume(')')) {
      if (shape.size() == kNpyMaxRank) {
        return Error("shape has more than " + std::to_string(kNpyMaxRank) +
                     " dimensions");
      }
      if (Peek() < '0' || Peek() > '9') {
        return Error("shape dimensions must be non-negative integers");
      }
      uint64_t dim = 0;
      while (Peek() >= '0' && Peek() <= '9') {
        const uint64_t digit = static_cast<uint64_t>(Peek() - '0');
        if (dim > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
          return Error("shape dimension overflows 64 bits");
        }
        dim = dim * 10 + digit;
        ++pos_;
      }
      Consume('L');
      shape.push_back(dim);
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != ')') {
        return Error("expected ',' or ')' in 'shape'");
      }
    }
    return shape;
  }

  Status Error(std::string_view message) const {
    return Corruption(path_ + ": npy header: " + std::string(message) +
                      " at offset " + std::to_string(pos_));
  }

  std::string_view text_;
  const std::string& path_;
  size_t pos_ = 0;
};

struct ParsedDescr {
  DType dtype;
  bool little_endian;  // The byte order of the data in the file.
};

// "<f4", "|u1", ">i2", "=f8", "b1": an optional byte order, then the kind
// and size that DTypeNumpyDescr gives without its byte order.
Result<ParsedDescr> ParseDescr(std::string_view descr,
                               const std::string& path) {
  bool little = std::endian::native == std::endian::little;
  std::string_view type = descr;
  if (!type.empty() &&
      std::string_view("<>|=").find(type[0]) != std::string_view::npos) {
    if (type[0] == '<') little = true;
    if (type[0] == '>') little = false;
    type.remove_prefix(1);
  }
  for (int code = 1; code <= 255; ++code) {
    const Result<DType> dtype = DTypeFromCode(static_cast<uint8_t>(code));
    if (!dtype.ok()) break;  // Codes are dense from 1.
    if (DTypeNumpyDescr(*dtype).substr(1) == type) {
      return ParsedDescr{*dtype, little};
    }
  }
  return Unimplemented(path + ": npy dtype '" + std::string(descr) +
                       "' is not supported (shoal has bool, integers and "
                       "floats of 2 to 8 bytes)");
}

}  // namespace

Result<std::string> EncodeNpyHeader(DType dtype,
                                    std::span<const uint64_t> shape) {
  if (shape.size() > kNpyMaxRank) {
    return InvalidArgument("npy: rank " + std::to_string(shape.size()) +
                           " exceeds NumPy's maximum of " +
                           std::to_string(kNpyMaxRank));
  }
  std::string dict = "{'descr': '" + std::string(DTypeNumpyDescr(dtype)) +
                     "', 'fortran_order': False, 'shape': " + ShapeRepr(shape) +
                     ", }";
  // Preamble: magic, version 1.0, uint16 header length.
  const size_t preamble = kMagic.size() + 2 + 2;
  const size_t unpadded = preamble + dict.size() + 1;  // +1 for '\n'.
  dict.append((kAlignment - unpadded % kAlignment) % kAlignment, ' ');
  dict += '\n';
  // At most ~1.4 KB at kNpyMaxRank 20-digit dimensions: always fits uint16.
  const auto header_len = static_cast<uint16_t>(dict.size());
  std::string out(kMagic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_len & 0xff);
  out += static_cast<char>(header_len >> 8);
  return out + dict;
}

Status WriteNpyFile(const std::string& path, DType dtype,
                    std::span<const uint64_t> shape, ByteSpan data) {
  SHOAL_ASSIGN_OR_RETURN(std::string header, EncodeNpyHeader(dtype, shape));
  const std::optional<uint64_t> expected = CheckedByteSize(shape, dtype);
  if (!expected || *expected != data.size()) {
    return InvalidArgument("npy " + path + ": " + std::to_string(data.size()) +
                           " bytes of data do not match shape " +
                           ShapeRepr(shape) + " of " +
                           std::string(DTypeName(dtype)));
  }
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus("open " + path, errno);
  Status status = WriteAll(fd.get(), AsBytes(header), path);
  if (status.ok()) status = WriteAll(fd.get(), data, path);
  if (fd.Close() != 0 && status.ok()) {
    status = ErrnoStatus("close " + path, errno);
  }
  // A truncated .npy would look valid to tools that do not check its size.
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

Result<NpyLayout> ReadNpyLayout(const RandomAccessFile& file) {
  const std::string& path = file.path();
  const uint64_t file_size = file.size();
  // Magic, version and a header length of up to 4 bytes.
  std::byte preamble[12];
  const size_t head = std::min<uint64_t>(file_size, sizeof(preamble));
  SHOAL_RETURN_IF_ERROR(file.ReadAt(0, std::span(preamble).first(head)));
  const std::string_view pre = AsStringView(std::span(preamble).first(head));
  if (pre.size() < kMagic.size() + 2 ||
      pre.substr(0, kMagic.size()) != kMagic) {
    return Corruption(path + ": not a .npy file (bad magic)");
  }
  const auto major = static_cast<uint8_t>(pre[6]);
  const auto minor = static_cast<uint8_t>(pre[7]);
  if ((major != 1 && major != 2) || minor != 0) {
    return Unimplemented(path + ": npy format version " +
                         std::to_string(major) + "." + std::to_string(minor) +
                         " is not supported (1.0 and 2.0 are)");
  }
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t header_start = 8 + length_bytes;
  if (pre.size() < header_start) {
    return Corruption(path + ": truncated npy preamble");
  }
  uint64_t header_len = 0;
  for (size_t i = 0; i < length_bytes; ++i) {
    header_len |= uint64_t{static_cast<uint8_t>(pre[8 + i])} << (8 * i);
  }
  if (header_len > kMaxHeaderBytes) {
    return Corruption(path + ": npy header of " + std::to_string(header_len) +
                      " bytes is implausibly long");
  }
  const uint64_t data_start = header_start + header_len;
  if (data_start > file_size) {
    return Corruption(path + ": npy header of " + std::to_string(header_len) +
                      " bytes passes the end of the " +
                      std::to_string(file_size) + "-byte file");
  }
  std::string header_text(header_len, '\0');
  SHOAL_RETURN_IF_ERROR(file.ReadAt(
      header_start,
      {reinterpret_cast<std::byte*>(header_text.data()), header_text.size()}));
  SHOAL_ASSIGN_OR_RETURN(HeaderDict header,
                         HeaderParser(header_text, path).Parse());
  SHOAL_ASSIGN_OR_RETURN(ParsedDescr descr, ParseDescr(header.descr, path));
  if (header.fortran_order) {
    return Unimplemented(path + ": Fortran-order npy arrays are not supported");
  }

  NpyLayout out;
  out.dtype = descr.dtype;
  out.shape = std::move(header.shape);
  out.little_endian = descr.little_endian;
  out.data_offset = data_start;
  const std::optional<uint64_t> data_bytes =
      CheckedByteSize(out.shape, out.dtype);
  if (!data_bytes) {
    return Corruption(path + ": npy shape " + ShapeRepr(out.shape) +
                      " overflows 64 bits");
  }
  // The shape is a claim; the file's size is a fact. Checking one against
  // the other before anything is allocated keeps a lying header from
  // costing the memory it claims.
  out.data_bytes = *data_bytes;
  const uint64_t available = file_size - data_start;
  if (available != out.data_bytes) {
    return Corruption(path + ": declares " + std::to_string(out.data_bytes) +
                      " bytes of data, has " + std::to_string(available));
  }
  return out;
}

Result<NpyArray> ReadNpyFile(const std::string& path, uint64_t max_data_bytes) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file,
                         RandomAccessFile::Open(path));
  SHOAL_ASSIGN_OR_RETURN(NpyLayout layout, ReadNpyLayout(*file));
  if (layout.data_bytes > max_data_bytes ||
      layout.data_bytes > std::numeric_limits<size_t>::max()) {
    return ResourceExhausted(path + ": npy shape " + ShapeRepr(layout.shape) +
                             " declares " + std::to_string(layout.data_bytes) +
                             " bytes of data, more than the limit of " +
                             std::to_string(max_data_bytes));
  }
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer data,
                         MutableBuffer::Allocate(layout.data_bytes));
  SHOAL_RETURN_IF_ERROR(file->ReadAt(layout.data_offset, data.span()));
  if (layout.little_endian != (std::endian::native == std::endian::little)) {
    SwapElementBytes(data.span(), DTypeSize(layout.dtype));
  }
  NpyArray out;
  out.dtype = layout.dtype;
  out.shape = std::move(layout.shape);
  out.data = std::move(data).Freeze();
  return out;
}

}  // namespace shoal::internal
