#include "loader/internal/source_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace shoal::internal {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values past Unicode are not UTF-8.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

Status ReadFileExactly(const std::string& path, MutableByteSpan out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + PrintableName(path), errno);
  size_t done = 0;
  Status status;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
                              static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoStatus("read " + PrintableName(path), errno);
      break;
    }
    if (n == 0) {
      status = IOError(PrintableName(path) + ": has " + std::to_string(done) +
                       " bytes, " + std::to_string(out.size()) +
                       " when it was listed (it changed meanwhile)");
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (status.ok()) {
    std::byte extra;
    const ssize_t n = ::pread(fd, &extra, 1, static_cast<off_t>(done));
    if (n > 0) {
      status = IOError(PrintableName(path) + ": grew past the " +
                       std::to_string(out.size()) +
                       " bytes it had when it was listed");
    }
  }
  ::close(fd);
  return status;
}

bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8Length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string PrintableName(std::string_view name) {
  if (IsUtf8(name)) return std::string(name);
  std::string out;
  for (size_t i = 0; i < name.size();) {
    const size_t n = Utf8Length(name, i);
    if (n == 0) {
      const auto c = static_cast<unsigned char>(name[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    } else {
      if (name[i] == '\\') out += '\\';
      out.append(name.substr(i, n));
      i += n;
    }
  }
  return out;
}

namespace {

// Appends `s` (valid UTF-8) as a JSON string literal.
void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

}  // namespace

void SourceInfo(std::string_view name, std::string* info) {
  // Built in place (no JSON library, no temporaries): this runs per sample.
  info->assign("{\"path\":");
  if (IsUtf8(name)) {
    AppendJsonString(name, info);
    info->push_back('}');
    return;
  }
  AppendJsonString(PrintableName(name), info);
  info->append(",\"path_hex\":\"");
  for (unsigned char c : name) {
    info->push_back(kHex[c >> 4]);
    info->push_back(kHex[c & 15]);
  }
  info->append("\"}");
}

TensorSpec LabelsSpec(std::vector<std::string> class_names) {
  TensorSpec labels;
  labels.name = "labels";
  labels.htype = HType::kClassLabel;
  labels.dtype = DType::kUInt32;
  labels.rank = 0;
  labels.chunk_compression = "lz4";
  labels.class_names = std::move(class_names);
  return labels;
}

std::vector<Buffer> LabelBuffers(size_t n) {
  std::vector<Buffer> out;
  for (uint32_t c = 0; c < n; ++c) {
    out.push_back(Buffer::CopyOf(
        ByteSpan(reinterpret_cast<const std::byte*>(&c), sizeof(c))));
  }
  return out;
}

}  // namespace shoal::internal
