// format_region_fixture DIR: the C++ half of region_numpy_test.sh.
//
// DIR/manifest.json lists arrays that region_numpy.py made with NumPy
// ([{"name", "dtype", "shape"}], each array's C-order bytes in
// DIR/NAME.bin). Every array is stored as one sample in every layout (tiled
// and untiled; raw, lz4, lz4+shuffle, zstd:1; small tiles and 4 KiB blocks
// so that a small array has many of each), read back whole and by regions:
// the whole sample, single elements, boxes across and on the lines where
// tiles can be cut, boxes around block boundaries, and seeded random boxes.
// Each read goes through ReadRegion and through ReadRegionInto on one
// thread and on all; the three must agree. The bytes go to DIR/out/K.bin and
// DIR/out/reads.json lists {"file", "array", "layout", "lo", "hi"}, for
// region_numpy.py to compare with NumPy slicing of the source.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/schema.h"

namespace shoal {
namespace {

struct Layout {
  const char* name;
  const char* codec;
  bool tiled;
  bool planar = false;  // tiles of one channel each (rank >= 3)
};

constexpr uint64_t kBlockBytes = 4096;
constexpr uint64_t kTileThreshold = 6000;

int Fail(const std::string& what) {
  std::cerr << "format_region_fixture: " << what << "\n";
  return 1;
}

// Coordinates worth cutting at along a dimension of size n: both ends and
// every multiple of the tile sizes halving can give (ceil(n / 2^i)).
std::vector<uint64_t> Edges(uint64_t n) {
  std::set<uint64_t> out = {0, 1, n - 1, n};
  for (uint64_t t = n; t > 1; t = (t + 1) / 2) {
    for (uint64_t b = t; b < n; b += t) out.insert(b);
  }
  return {out.begin(), out.end()};
}

int Run(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  if (!in) return Fail("cannot read " + dir + "/manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in, nullptr, false);
  if (manifest.is_discarded()) return Fail("manifest.json is not JSON");
  const std::vector<Layout> layouts = {
      {"untiled-raw", "", false},
      {"untiled-lz4", "lz4", false},
      {"tiled-raw", "", true},
      {"tiled-lz4", "lz4", true},
      {"tiled-lz4+shuffle", "lz4+shuffle", true},
      {"tiled-zstd:1", "zstd:1", true},
      {"tiled-planar-raw", "", true, true},
      {"tiled-planar-lz4", "lz4", true, true}};
  nlohmann::json reads = nlohmann::json::array();
  int file = 0;
  int id = 0;
  for (const auto& array : manifest) {
    const std::string name = array["name"];
    auto dtype = ParseDType(array["dtype"].get<std::string>());
    if (!dtype.ok()) return Fail(dtype.status().ToString());
    const Shape shape(array["shape"].get<std::vector<uint64_t>>());
    std::ifstream bin(dir + "/" + name + ".bin", std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(bin)),
                                  std::istreambuf_iterator<char>());
    const size_t rank = shape.rank();
    for (const Layout& layout : layouts) {
      const std::string url = "mem://region-fixture-" + std::to_string(id++);
      {
        auto ds = Dataset::Create(url);
        if (!ds.ok()) return Fail(ds.status().ToString());
        TensorSpec spec{.name = "a", .dtype = *dtype};
        spec.chunk_compression = layout.codec;
        spec.block_bytes = kBlockBytes;
        spec.tiling_threshold = layout.tiled ? kTileThreshold : kNoTiling;
        spec.planar = layout.planar;
        auto t = (*ds)->CreateTensor(spec);
        if (!t.ok()) return Fail(t.status().ToString());
        Status s = (*t)->Append(
            shape, ByteSpan(reinterpret_cast<const std::byte*>(bytes.data()),
                            bytes.size()));
        if (s.ok()) s = (*ds)->Flush();
        if (!s.ok()) return Fail(name + ": " + s.ToString());
        const bool many = (*t)->stats().num_chunks > 1;
        if (layout.tiled != many) {
          return Fail(name + " " + layout.name + ": " +
                      std::to_string((*t)->stats().num_chunks) +
                      " chunks, the layout wants " +
                      (layout.tiled ? "several tiles" : "one"));
        }
        // Planar: a whole grid of tiles per channel.
        const uint64_t channels = rank >= 3 ? shape[rank - 1] : 1;
        if (layout.planar && (*t)->stats().num_chunks % channels != 0) {
          return Fail(name + " " + layout.name + ": " +
                      std::to_string((*t)->stats().num_chunks) + " tiles for " +
                      std::to_string(channels) + " channels");
        }
      }
      auto ds = Dataset::Open(url, {.read_only = true});
      if (!ds.ok()) return Fail(ds.status().ToString());
      auto t = (*ds)->tensor("a");
      if (!t.ok()) return Fail(t.status().ToString());

      // The boxes.
      std::vector<std::pair<std::vector<uint64_t>, std::vector<uint64_t>>>
          boxes;
      std::vector<uint64_t> zero(rank, 0),
          dims(shape.dims().begin(), shape.dims().end());
      boxes.push_back({zero, dims});
      std::vector<uint64_t> last(rank);
      for (size_t d = 0; d < rank; ++d) last[d] = dims[d] - 1;
      boxes.push_back({zero, std::vector<uint64_t>(rank, 1)});
      boxes.push_back({last, dims});
      std::vector<std::vector<uint64_t>> edges(rank);
      for (size_t d = 0; d < rank; ++d) edges[d] = Edges(dims[d]);
      std::mt19937_64 rng(static_cast<uint64_t>(id) * 7919);
      auto pick = [&](const std::vector<uint64_t>& v) {
        return v[rng() % v.size()];
      };
      for (int k = 0; k < 40; ++k) {  // on and across tile cut lines
        std::vector<uint64_t> lo(rank), hi(rank);
        for (size_t d = 0; d < rank; ++d) {
          uint64_t a = pick(edges[d]), b = pick(edges[d]);
          if (k % 2) a = a > 0 ? a - 1 : a, b = std::min(b + 1, dims[d]);
          if (a > b) std::swap(a, b);
          if (a == b) b = std::min(a + 1, dims[d]), a = b - 1;
          lo[d] = a, hi[d] = b;
        }
        boxes.push_back({lo, hi});
      }
      const uint64_t elements = shape.num_elements();
      const uint64_t item = DTypeSize(*dtype);
      for (uint64_t at = kBlockBytes / item; at < elements;
           at += kBlockBytes / item) {  // around block boundaries
        std::vector<uint64_t> lo(rank), hi(rank);
        uint64_t rest = at;
        for (size_t d = rank; d-- > 0;) {
          const uint64_t c = rest % dims[d];
          rest /= dims[d];
          lo[d] = c > 0 ? c - 1 : 0;
          hi[d] = std::min(c + 2, dims[d]);
        }
        boxes.push_back({lo, hi});
        boxes.push_back({std::vector<uint64_t>(hi.size(), 0), hi});
      }
      for (int k = 0; k < 20; ++k) {  // random, single elements among them
        std::vector<uint64_t> lo(rank), hi(rank);
        for (size_t d = 0; d < rank; ++d) {
          lo[d] = rng() % dims[d];
          hi[d] =
              k % 4 == 0 ? lo[d] + 1 : lo[d] + 1 + rng() % (dims[d] - lo[d]);
        }
        boxes.push_back({lo, hi});
      }

      for (const auto& [lo, hi] : boxes) {
        auto region = (*t)->ReadRegion(0, lo, hi);
        if (!region.ok()) return Fail(region.status().ToString());
        for (int threads : {1, 0}) {
          std::vector<std::byte> again(region->data.size());
          Status s = (*t)->ReadRegionInto(0, lo, hi, MutableByteSpan(again),
                                          {.max_threads = threads});
          if (!s.ok()) return Fail(s.ToString());
          if (!std::equal(again.begin(), again.end(),
                          region->data.span().begin())) {
            return Fail(name + " " + layout.name +
                        ": ReadRegionInto differs from ReadRegion");
          }
        }
        const std::string out = dir + "/out/" + std::to_string(file) + ".bin";
        std::ofstream o(out, std::ios::binary);
        o.write(reinterpret_cast<const char*>(region->data.data()),
                static_cast<std::streamsize>(region->data.size()));
        if (!o) return Fail("cannot write " + out);
        reads.push_back({{"file", std::to_string(file) + ".bin"},
                         {"array", name},
                         {"layout", layout.name},
                         {"lo", lo},
                         {"hi", hi}});
        ++file;
      }
      // ReadInto of the whole sample gives the source bytes too.
      std::vector<std::byte> whole(bytes.size());
      Status s = (*t)->ReadInto(0, MutableByteSpan(whole));
      if (!s.ok()) return Fail(s.ToString());
      if (std::memcmp(whole.data(), bytes.data(), bytes.size()) != 0) {
        return Fail(name + " " + layout.name + ": ReadInto differs");
      }
    }
  }
  std::ofstream o(dir + "/out/reads.json");
  o << reads.dump();
  if (!o) return Fail("cannot write reads.json");
  std::cout << "format_region_fixture: " << file << " reads\n";
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: format_region_fixture DIR\n";
    return 2;
  }
  return shoal::Run(argv[1]);
}
