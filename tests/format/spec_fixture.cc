// Writes datasets through the C++ API, and the values it wrote as NumPy
// references, for tests/format/spec_reader.py: a reader written from
// format/FORMAT.md alone must read back exactly these values.
//
//   format_spec_fixture fresh DATASET_DIR EXPECT_DIR
//     Creates a file:// dataset at DATASET_DIR covering every dtype, raw,
//     lz4, lz4hc and zstd chunk and sample compression (with and without
//     +shuffle), incompressible blocks, ragged and empty samples, scalars,
//     tiled samples (raw, chunk- and sample-compressed, with edge tiles),
//     several chunks per tensor, sample infos and a second commit after a
//     reopen.
//   format_spec_fixture golden EXPECT_DIR
//     Writes only the references of the golden recipe of
//     tests/format/golden_test.cc (the values behind tests/data/golden/v*).
//
// EXPECT_DIR gets <tensor>.npz (members <index>.npy) holding every sample
// of every tensor, hidden _shape/ and _info/ tensors included. The references
// come from the values generated here, never from reading a dataset back, so
// the Python reader checks the bytes on disk against what the API was given.
// Exit status 0 on success, 1 with a message on stderr otherwise.
#include <zlib.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "format/dataset.h"
#include "format/schema.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

// Samples are generated in host byte order, stored as given, and described
// as little-endian ('<') in the NPY headers; FORMAT.md's data is
// little-endian.
static_assert(std::endian::native == std::endian::little);

// ---- References: one .npz per tensor, written by hand ----
// NPY and a zip of stored (uncompressed) members are small formats; one
// archive per tensor instead of a file per sample keeps the test fast on
// file systems where creating files is slow.

void PutLe(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out += static_cast<char>((value >> (8 * i)) & 0xFF);
  }
}

// One array as NPY v1.0: magic, version, u16 header length, a Python-literal
// header dict padded with spaces so that the data starts at a multiple of 64
// bytes, then the C-order little-endian data.
std::string NpyBytes(DType dtype, const Shape& shape, ByteSpan data) {
  std::string dims;  // a Python tuple's body: "", "3,", "3, 4"
  for (size_t d = 0; d < shape.rank(); ++d) {
    if (d > 0) dims += ", ";
    dims += std::to_string(shape[d]);
  }
  if (shape.rank() == 1) dims += ",";
  std::string header = "{'descr': '" + std::string(DTypeNumpyDescr(dtype)) +
                       "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t prefix = 10;  // magic (6) + version (2) + header length (2)
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  PutLe(out, header.size(), 2);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  return out;
}

// A zip archive of stored members (what numpy.savez writes, minus
// compression): local headers with the data, then the central directory.
// Members stay far below 4 GiB, so no zip64 records are needed.
std::string ZipStored(
    const std::vector<std::pair<std::string, std::string>>& members) {
  constexpr uint32_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01
  std::string out, directory;
  for (const auto& [name, data] : members) {
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()),
              static_cast<uInt>(data.size())));
    auto common = [&](std::string& h) {  // from "version needed" on
      PutLe(h, 20, 2);                   // version needed: 2.0
      PutLe(h, 0, 2);                    // flags
      PutLe(h, 0, 2);                    // method: stored
      PutLe(h, 0, 2);                    // time
      PutLe(h, kDosDate, 2);
      PutLe(h, crc, 4);
      PutLe(h, data.size(), 4);  // compressed size
      PutLe(h, data.size(), 4);  // uncompressed size
      PutLe(h, name.size(), 2);
      PutLe(h, 0, 2);  // extra field length
    };
    const uint64_t offset = out.size();
    PutLe(out, 0x04034b50, 4);
    common(out);
    out += name;
    out += data;
    PutLe(directory, 0x02014b50, 4);
    PutLe(directory, 20, 2);  // version made by
    common(directory);
    PutLe(directory, 0, 2);  // comment length
    PutLe(directory, 0, 2);  // disk number
    PutLe(directory, 0, 2);  // internal attributes
    PutLe(directory, 0, 4);  // external attributes
    PutLe(directory, offset, 4);
    directory += name;
  }
  const uint64_t directory_offset = out.size();
  out += directory;
  PutLe(out, 0x06054b50, 4);
  PutLe(out, 0, 2);  // this disk
  PutLe(out, 0, 2);  // disk of the directory
  PutLe(out, members.size(), 2);
  PutLe(out, members.size(), 2);
  PutLe(out, directory.size(), 4);
  PutLe(out, directory_offset, 4);
  PutLe(out, 0, 2);  // comment length
  return out;
}

// The references of one dataset: each data sample's value, and the values
// its hidden _shape/ and _info/ tensors must hold (FORMAT.md: uint32 dims,
// and the info JSON as uint8 bytes, empty when none). Write() stores them
// as EXPECT_DIR/<tensor>.npz with members "<index>.npy".
class References {
 public:
  explicit References(fs::path root) : root_(std::move(root)) {}

  void Add(const std::string& tensor, uint64_t index, DType dtype,
           const Shape& shape, ByteSpan data, std::string_view info = {}) {
    const std::string member = std::to_string(index) + ".npy";
    tensors_[tensor].emplace_back(member, NpyBytes(dtype, shape, data));
    std::vector<uint32_t> dims(shape.dims().begin(), shape.dims().end());
    tensors_["_shape/" + tensor].emplace_back(
        member, NpyBytes(DType::kUInt32, Shape{dims.size()},
                         std::as_bytes(std::span(dims))));
    tensors_["_info/" + tensor].emplace_back(
        member, NpyBytes(DType::kUInt8, Shape{info.size()},
                         std::as_bytes(std::span(info))));
  }

  Status Write() const {
    for (const auto& [tensor, members] : tensors_) {
      const fs::path path = root_ / (tensor + ".npz");
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      std::ofstream out(path, std::ios::binary);
      out << ZipStored(members);
      out.close();
      if (!out) return IOError("cannot write reference " + path.string());
    }
    return Status();
  }

 private:
  fs::path root_;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>>
      tensors_;
};

template <typename T>
ByteSpan AsSpan(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

// ---- The fresh dataset ----

// splitmix64: varied, reproducible values (and incompressible bytes).
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// What a tensor's values look like: small integers (compressible, like
// real data), random bits (incompressible: blocks stay stored raw under a
// chunk codec), or class labels (below the number of class names).
enum class Values { kSmall, kNoise, kLabel };

// The elements of sample i of tensor `seed`, as the bytes of `dtype`. Floats
// get fractions and signs; bool stays 0/1; float16 is built from exactly
// representable values.
std::vector<std::byte> SampleBytes(DType dtype, const Shape& shape,
                                   uint64_t seed, uint64_t i, Values values) {
  const uint64_t n = shape.num_elements();
  std::vector<std::byte> out;
  auto put = [&out](const auto& value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), p, p + sizeof(value));
  };
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t r = Mix(seed * 1000003 + i * 7919 + k);
    const int64_t v = values == Values::kNoise
                          ? static_cast<int64_t>(r)
                          : static_cast<int64_t>(r % 97) - 40;
    // Products wrap in unsigned arithmetic (noise values overflow int64;
    // the bytes are those two's complement gives).
    const uint64_t u = static_cast<uint64_t>(v);
    if (values == Values::kLabel) {
      put(static_cast<uint32_t>((i + k) % 3));
      continue;
    }
    switch (dtype) {
      case DType::kBool:
        put(static_cast<uint8_t>(r & 1));
        break;
      case DType::kUInt8:
        put(static_cast<uint8_t>(v));
        break;
      case DType::kInt8:
        put(static_cast<int8_t>(v));
        break;
      case DType::kUInt16:
        put(static_cast<uint16_t>(u * 611));
        break;
      case DType::kInt16:
        put(static_cast<int16_t>(u * 301));
        break;
      case DType::kUInt32:
        put(static_cast<uint32_t>(u * 70001));
        break;
      case DType::kInt32:
        put(static_cast<int32_t>(u * 65537));
        break;
      case DType::kUInt64:
        put(static_cast<uint64_t>(v) << 33);
        break;
      case DType::kInt64:
        put(static_cast<int64_t>(u * (uint64_t{1} << 40) + 3));
        break;
      case DType::kFloat16: {
        // sign | exponent 15 (1.0 .. 2.0) | 10 bits of mantissa.
        put(static_cast<uint16_t>(((r >> 20) & 0x8000) | (15 << 10) |
                                  (r & 0x3FF)));
        break;
      }
      case DType::kFloat32:
        put(static_cast<float>(v) * 0.375f);
        break;
      case DType::kFloat64:
        put(static_cast<double>(v) / 3.0);
        break;
    }
  }
  return out;
}

// A tensor of the fresh dataset and the shape of its sample i.
struct FreshTensor {
  TensorSpec spec;
  uint64_t samples;
  Shape (*shape)(uint64_t i);
  Values values = Values::kSmall;
};

// Under 4 KiB chunks every tensor has several chunks; tiling thresholds are
// small so that tiles stay cheap. Shapes with a 0 dimension give empty
// samples; the tiled shapes leave partial tiles at the grid's edges (see
// FORMAT.md, Tiling: [91, 71, 1] uint16 under 4096 gives tiles [46, 36, 1]).
std::vector<FreshTensor> FreshTensors() {
  constexpr uint64_t kChunk = 4096;
  constexpr uint64_t kBlock = 4096;
  auto spec = [](std::string name, DType dtype, std::string sample_codec,
                 std::string chunk_codec, uint64_t tiling = kNoTiling) {
    TensorSpec s;
    s.name = std::move(name);
    s.dtype = dtype;
    s.sample_compression = std::move(sample_codec);
    s.chunk_compression = std::move(chunk_codec);
    s.max_chunk_bytes = kChunk;
    s.block_bytes = kBlock;
    s.tiling_threshold = tiling;
    return s;
  };
  TensorSpec labels = spec("labels", DType::kUInt32, "", "lz4");
  labels.htype = HType::kClassLabel;
  labels.class_names = {"zero", "one", "two"};
  return {
      {spec("raw/u8", DType::kUInt8, "", ""), 40,
       [](uint64_t) {
         return Shape{12, 10, 3};
       }},
      {spec("raw/bool", DType::kBool, "", ""), 30,
       [](uint64_t i) { return Shape{i % 7 * 40 + 1}; }},
      {spec("raw/u64", DType::kUInt64, "", ""), 25,
       [](uint64_t i) {
         return Shape{i % 4 * 5, 9};
       }},
      {spec("lz4/i16", DType::kInt16, "", "lz4"), 40,
       [](uint64_t i) {
         return Shape{i % 5 * 20, 7};
       }},
      {spec("lz4/noise", DType::kUInt8, "", "lz4"), 30,
       [](uint64_t) { return Shape{700}; }, Values::kNoise},
      {spec("lz4/f16", DType::kFloat16, "", "lz4+shuffle"), 30,
       [](uint64_t i) { return Shape{100 + i}; }},
      {spec("lz4hc/f64", DType::kFloat64, "", "lz4hc:9"), 30,
       [](uint64_t) {
         return Shape{5, 20};
       }},
      {spec("zstd/i32", DType::kInt32, "", "zstd:3+shuffle"), 35,
       [](uint64_t) {
         return Shape{16, 16};
       }},
      {spec("zstd/i8", DType::kInt8, "", "zstd:-3"), 30,
       [](uint64_t i) { return Shape{i * 37 % 500}; }},
      {spec("sample/f32", DType::kFloat32, "zstd:3", ""), 40,
       [](uint64_t i) {
         return Shape{i % 3 + 1, i % 4 * 30};
       }},
      {spec("sample/u16", DType::kUInt16, "lz4+shuffle", ""), 30,
       [](uint64_t) { return Shape{300}; }},
      {spec("sample/i64", DType::kInt64, "zstd:19+shuffle", ""), 25,
       [](uint64_t i) { return Shape{i % 6 * 60}; }, Values::kNoise},
      {spec("sample/u32", DType::kUInt32, "lz4hc:4", ""), 25,
       [](uint64_t) {
         return Shape{2, 2, 100};
       }},
      {labels, 1030, [](uint64_t) { return Shape{}; }, Values::kLabel},
      {spec("tiled/u16", DType::kUInt16, "", "zstd:1", 4096), 6,
       [](uint64_t i) {
         return i % 2 == 0 ? Shape{91, 71, 1} : Shape{10, 10, 2};
       }},
      {spec("tiled/f32", DType::kFloat32, "lz4", "", 2048), 4,
       [](uint64_t i) {
         return Shape{40, 33 - i};
       }},
      {spec("tiled/i32", DType::kInt32, "", "", 4096), 4,
       [](uint64_t i) { return i == 1 ? Shape{1001} : Shape{3000 + i}; }},
  };
}

std::string InfoFor(const std::string& tensor, uint64_t i) {
  if (i % 3 != 0) return "";
  return "{\"tensor\":\"" + tensor + "\",\"i\":" + std::to_string(i) + "}";
}

// Appends samples [begin, end) of every tensor and records them.
Status AppendFresh(Dataset& ds, const std::vector<FreshTensor>& tensors,
                   double begin_fraction, double end_fraction,
                   References& refs) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    const FreshTensor& ft = tensors[t];
    const DType dtype = *ft.spec.dtype;
    SHOAL_ASSIGN_OR_RETURN(Tensor * tensor, ds.tensor(ft.spec.name));
    const auto begin = static_cast<uint64_t>(ft.samples * begin_fraction);
    const auto end = static_cast<uint64_t>(ft.samples * end_fraction);
    for (uint64_t i = begin; i < end; ++i) {
      const Shape shape = ft.shape(i);
      const auto bytes = SampleBytes(dtype, shape, t + 1, i, ft.values);
      const std::string info = InfoFor(ft.spec.name, i);
      SHOAL_RETURN_IF_ERROR(tensor->Append(shape, bytes, info));
      refs.Add(ft.spec.name, i, dtype, shape, bytes, info);
    }
  }
  return Status();
}

Status WriteFresh(const std::string& dir, const std::string& expect) {
  const std::string url = "file://" + fs::absolute(dir).string();
  References refs(expect);
  const auto tensors = FreshTensors();
  {
    SHOAL_ASSIGN_OR_RETURN(auto ds, Dataset::Create(url));
    for (const auto& ft : tensors) {
      SHOAL_RETURN_IF_ERROR(ds->CreateTensor(ft.spec).status());
    }
    SHOAL_RETURN_IF_ERROR(AppendFresh(*ds, tensors, 0, 0.6, refs));
    SHOAL_RETURN_IF_ERROR(ds->Close());
  }
  // A second commit after a reopen: appends resume in (or rewrite) the
  // last chunk of each tensor, which the reader must see as one sequence.
  SHOAL_ASSIGN_OR_RETURN(auto ds, Dataset::Open(url));
  SHOAL_RETURN_IF_ERROR(AppendFresh(*ds, tensors, 0.6, 1, refs));
  SHOAL_RETURN_IF_ERROR(ds->Close());
  return refs.Write();
}

// ---- The golden recipe's values (tests/format/golden_test.cc) ----
// Kept in step with BuildGolden there: a change to the recipe changes the
// golden files, and these references with it.

std::vector<uint8_t> GoldenBytes(int i, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t k = 0; k < n; ++k) {
    v[k] = static_cast<uint8_t>(i * 31 + k * 7 + (k >> 5));
  }
  return v;
}
std::vector<float> GoldenFloats(int i, size_t n) {
  std::vector<float> v(n);
  for (size_t k = 0; k < n; ++k) {
    v[k] = 0.25f * i + 0.5f * static_cast<float>(k);
  }
  return v;
}
std::vector<int16_t> GoldenShorts(int i, size_t n) {
  std::vector<int16_t> v(n);
  for (size_t k = 0; k < n; ++k) {
    v[k] = static_cast<int16_t>(1000 * i - 3 * static_cast<int>(k));
  }
  return v;
}

Status WriteGoldenReferences(const std::string& expect) {
  References refs(expect);
  for (int i = 0; i < 12; ++i) {
    const std::string info =
        "{\"source\":\"img" + std::to_string(i) + ".png\"}";
    refs.Add("images", i, DType::kUInt8, Shape{8, 10, 3},
             AsSpan(GoldenBytes(i, 240)), info);
    refs.Add("group/features", i, DType::kFloat32, Shape{64},
             AsSpan(GoldenFloats(i, 64)));
    const uint64_t rows = i % 4;
    refs.Add("ragged", i, DType::kInt16, Shape{rows, 3},
             AsSpan(GoldenShorts(i, rows * 3)));
  }
  for (int i = 0; i < 15; ++i) {
    const std::vector<uint32_t> label = {static_cast<uint32_t>(i % 3)};
    refs.Add("labels", i, DType::kUInt32, Shape{}, AsSpan(label));
  }
  std::vector<uint16_t> big(40 * 30 * 2);
  for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<uint16_t>(k * 3);
  refs.Add("big", 0, DType::kUInt16, Shape{40, 30, 2}, AsSpan(big),
           "{\"kind\":\"tiled\"}");
  return refs.Write();
}

int Main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  Status status;
  if (mode == "fresh" && argc == 4) {
    status = WriteFresh(argv[2], argv[3]);
  } else if (mode == "golden" && argc == 3) {
    status = WriteGoldenReferences(argv[2]);
  } else {
    std::fprintf(stderr,
                 "usage: format_spec_fixture fresh DATASET_DIR EXPECT_DIR\n"
                 "       format_spec_fixture golden EXPECT_DIR\n");
    return 1;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "format_spec_fixture %s: %s\n", mode.c_str(),
                 status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
