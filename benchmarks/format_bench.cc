// shoal_format_bench: throughput of the format's read path against the raw
// codec libraries, on the same data, on one thread, in one run.
//
// For each chunk compression ("" raw, "lz4", "zstd:3") and each store
// (mem://, file:// in a temp dir) it builds a dataset of one image tensor and
// measures Tensor::ReadRange in chunk-sized batches, Tensor::Read in order
// and Tensor::Read at seeded random indices. The reference is the raw
// library (LZ4_decompress_safe, ZSTD_decompress, or memcpy for raw chunks)
// run over the exact stored blocks of the dataset's chunk objects into a
// preallocated, pre-touched buffer, in passes interleaved with shoal's; the
// ratio shoal ÷ reference is what the tables report. A last section compares
// one random sample read from a single 64 MiB lz4 chunk with decompressing
// that whole chunk.
//
// Not a ctest test: `make bench` runs it. Takes about 20 s. Results and their
// interpretation: benchmarks/RESULTS.md. MB = 10^6 bytes.
#include <lz4.h>
#include <xxh_x86dispatch.h>  // XXH3_64bits = the dispatching build, as shoal uses
#include <xxhash.h>
#include <zstd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/buffer.h"
#include "base/random.h"
#include "benchmarks/bench_tmp.h"
#include "benchmarks/synthetic_images.h"
#include "format/chunk.h"
#include "format/dataset.h"
#include "format/schema.h"
#include "format/store.h"
#include "loader/internal/idx.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  uint64_t mib = 64;
  int repeats = 5;
  double random_seconds = 1.0;
  uint64_t seed = 1;
  std::string images =
      "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  std::string tmp_dir = "/tmp";
  // Subsets, for profiling one variant at a time.
  std::vector<std::string> codecs = {"raw", "lz4", "zstd:3"};
  std::vector<std::string> stores = {"mem", "file"};
  bool large_chunk = true;
};

// Keeps the compiler from dropping reads whose results are otherwise unused.
volatile uint64_t g_sink = 0;

// Times are the CPU time (user + sys) of the one benchmark thread: other
// processes on a shared machine then inflate them little. Wall time is kept
// alongside to report how contended the run was.
double ThreadCpuSeconds() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Stopwatch {
  Clock::time_point wall_start = Clock::now();
  double cpu_start = ThreadCpuSeconds();

  double cpu() const { return ThreadCpuSeconds() - cpu_start; }
  double wall() const {
    return std::chrono::duration<double>(Clock::now() - wall_start).count();
  }
};

// Runs `passes` round-robin, `repeats` rounds, and returns each pass's best
// (lowest) time. Round-robin spreads the slow phases of a shared machine over
// all passes, so ratios between them hold; the best time is the one least
// disturbed by other processes.
std::vector<double> BestSeconds(
    int repeats, const std::vector<std::function<void()>>& passes) {
  std::vector<double> best(passes.size(), 1e300);
  for (int r = 0; r < repeats; ++r) {
    for (size_t p = 0; p < passes.size(); ++p) {
      const Stopwatch watch;
      passes[p]();
      best[p] = std::min(best[p], watch.cpu());
    }
  }
  return best;
}

[[noreturn]] void Die(const Status& status, const std::string& what) {
  std::fprintf(stderr, "shoal_format_bench: %s: %s\n", what.c_str(),
               status.ToString().c_str());
  std::exit(1);
}

void Check(const Status& status, const std::string& what) {
  if (!status.ok()) Die(status, what);
}

template <typename T>
T Check(Result<T> result, const std::string& what) {
  if (!result.ok()) Die(result.status(), what);
  return std::move(result).value();
}

// ------------------------------------------------------------------ data --

struct SourceData {
  std::string description;
  Shape sample_shape;
  uint64_t sample_bytes = 0;
  uint64_t num_samples = 0;
  std::vector<std::byte> bytes;
};

// `config.mib` MiB of 28x28x1 uint8 images: Fashion-MNIST (repeated as
// needed), or synthetic ones when the file is missing.
SourceData LoadImages(const Config& config) {
  SourceData data;
  data.sample_shape = Shape{28, 28, 1};
  data.sample_bytes = 784;
  data.num_samples = (config.mib << 20) / data.sample_bytes;
  data.bytes.resize(data.num_samples * data.sample_bytes);
  auto idx = internal::ReadIdxFile(config.images);
  if (idx.ok() && idx->dims.size() == 3 && idx->dims[1] == 28 &&
      idx->dims[2] == 28 && idx->dtype == DType::kUInt8) {
    const ByteSpan images = idx->data.span();
    for (size_t done = 0; done < data.bytes.size();) {
      const size_t n = std::min(images.size(), data.bytes.size() - done);
      std::memcpy(data.bytes.data() + done, images.data(), n);
      done += n;
    }
    data.description = "Fashion-MNIST " + config.images + " (" +
                       std::to_string(idx->dims[0]) +
                       " images, cycled to fill the size)";
  } else {
    data.bytes = bench::SynthesizeSmallImages(data.num_samples, config.seed);
    data.description =
        "synthetic smooth images (" + config.images + ": " +
        (idx.ok() ? std::string("not 28x28 uint8") : idx.status().ToString()) +
        ")";
  }
  return data;
}

// -------------------------------------------------------------- datasets --

std::unique_ptr<Dataset> Build(const std::string& url, const SourceData& data,
                               const std::string& compression,
                               uint64_t max_chunk_bytes) {
  auto ds = Check(Dataset::Create(url, {.overwrite = true, .id_seed = 7}), url);
  TensorSpec spec;
  spec.name = "images";
  spec.htype = HType::kImage;
  spec.chunk_compression = compression;
  spec.max_chunk_bytes = max_chunk_bytes;
  Tensor* images = Check(ds->CreateTensor(spec), url);
  Check(images->AppendBatch(data.sample_shape, data.num_samples, data.bytes),
        url + ": append");
  Check(ds->Close(), url + ": close");
  return Check(Dataset::Open(url, {.read_only = true}), url + ": open");
}

// Removes every object of a mem:// dataset so the next variant starts with
// the same memory footprint.
void Drop(Store& store) {
  for (const std::string& key : Check(store.List(""), "list")) {
    Check(store.Delete(key), "delete " + key);
  }
}

// Reads the whole tensor once (untimed) and compares it with the source, so
// a benchmark of wrong answers cannot go unnoticed.
void Verify(const Tensor& tensor, const SourceData& data) {
  uint64_t offset = 0;
  const uint64_t batch = 10000;
  for (uint64_t b = 0; b < data.num_samples; b += batch) {
    auto samples = Check(
        tensor.ReadRange(b, std::min(b + batch, data.num_samples)), "verify");
    for (const Sample& s : samples) {
      if (s.data.size() != data.sample_bytes ||
          std::memcmp(s.data.data(), data.bytes.data() + offset,
                      data.sample_bytes) != 0) {
        Die(Corruption("sample differs from the source"), "verify");
      }
      offset += data.sample_bytes;
    }
  }
}

// ------------------------------------------------------------- reference --

// The data tensor's chunk objects with their decoded headers. The hidden
// shape and info tensors have rank 1, the image tensor rank 3.
struct StoredChunk {
  Buffer object;
  std::shared_ptr<const ChunkHeader> header;
};

std::vector<StoredChunk> LoadChunks(const Dataset& ds, const Tensor& tensor) {
  std::vector<StoredChunk> chunks;
  uint64_t raw = 0;
  for (const std::string& key : Check(ds.store()->List("chunks/"), "list")) {
    Buffer object = Check(ds.store()->Read(key), key);
    auto header = Check(ChunkHeader::Decode(object.span(), object.size()), key);
    if (header->format().rank != 3) continue;
    raw += header->data_size();
    chunks.push_back({std::move(object), std::move(header)});
  }
  const TensorStats stats = tensor.stats();
  if (chunks.size() != stats.num_chunks || raw != stats.raw_bytes) {
    Die(Internal("chunk objects do not add up to the tensor"), "reference");
  }
  return chunks;
}

// Decodes every block of `chunks` with the raw library into `dst` (big
// enough for any chunk), optionally hashing the stored bytes first like
// shoal's checksum check. No shoal code runs in the loop.
void DecodeWithLibrary(const std::vector<StoredChunk>& chunks, bool checksum,
                       std::byte* dst) {
  uint64_t sink = 0;
  for (const StoredChunk& chunk : chunks) {
    const bool zstd = chunk.header->format().chunk_codec.starts_with("zstd");
    for (const BlockInfo& block : chunk.header->blocks()) {
      const std::byte* src = chunk.object.data() + block.stored_offset;
      std::byte* out = dst + block.raw_offset;
      if (checksum) sink ^= XXH3_64bits(src, block.stored_size);
      size_t got = block.raw_size;
      if (!block.compressed) {
        std::memcpy(out, src, block.stored_size);
      } else if (zstd) {
        got = ZSTD_decompress(out, block.raw_size, src, block.stored_size);
      } else {
        got = static_cast<size_t>(LZ4_decompress_safe(
            reinterpret_cast<const char*>(src), reinterpret_cast<char*>(out),
            static_cast<int>(block.stored_size),
            static_cast<int>(block.raw_size)));
      }
      if (got != block.raw_size) Die(Corruption("block"), "reference decode");
      sink += static_cast<uint64_t>(out[0]);
    }
  }
  g_sink = g_sink + sink;
}

// The reference passes over one tensor's chunks, into a buffer allocated and
// touched up front so page faults stay out of the reference.
class ReferenceDecoder {
 public:
  explicit ReferenceDecoder(std::vector<StoredChunk> chunks)
      : chunks_(std::move(chunks)) {
    uint64_t max_chunk = 0;
    for (const StoredChunk& c : chunks_) {
      max_chunk = std::max(max_chunk, c.header->data_size());
    }
    dst_.assign(max_chunk, std::byte{1});
  }
  const std::vector<StoredChunk>& chunks() const { return chunks_; }
  void Decode(bool checksum) {
    DecodeWithLibrary(chunks_, checksum, dst_.data());
  }

 private:
  std::vector<StoredChunk> chunks_;
  std::vector<std::byte> dst_;
};

// ----------------------------------------------------------- shoal reads --

void SequentialRange(const Tensor& tensor, uint64_t batch) {
  for (uint64_t b = 0; b < tensor.size(); b += batch) {
    auto samples = Check(
        tensor.ReadRange(b, std::min(b + batch, tensor.size())), "ReadRange");
    g_sink = g_sink + samples.size() +
             static_cast<uint64_t>(samples.back().data.data()[0]);
  }
}

void SequentialRead(const Tensor& tensor) {
  for (uint64_t i = 0; i < tensor.size(); ++i) {
    Sample s = Check(tensor.Read(i), "Read");
    g_sink = g_sink + static_cast<uint64_t>(s.data.data()[0]);
  }
}

struct RandomResult {
  uint64_t reads = 0;
  double seconds = 0;
  double first_read_seconds = 0;  // cold: header and block not cached
};

// Reads at seeded uniform indices, in rounds of 256, until `budget` seconds
// have passed; the index sequence is the same for every variant.
RandomResult RandomReads(const Tensor& tensor, uint64_t seed, double budget) {
  SplitMix64 rng(seed);
  RandomResult result;
  const Stopwatch watch;
  do {
    for (int k = 0; k < 256; ++k) {
      const Stopwatch one;
      Sample s = Check(tensor.Read(rng.Bounded(tensor.size())), "Read");
      if (result.reads == 0) result.first_read_seconds = one.cpu();
      g_sink = g_sink + static_cast<uint64_t>(s.data.data()[0]);
      ++result.reads;
    }
    result.seconds = watch.cpu();
  } while (result.seconds < budget);
  return result;
}

// ---------------------------------------------------------------- report --

double MBps(uint64_t bytes, double seconds) { return bytes / seconds / 1e6; }

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("model name")) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

// The 1-minute load average, from /proc/loadavg.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "unknown" : one;
}

void PrintHeader(const Config& config, const SourceData& data,
                 const std::string& command) {
  std::printf("# shoal_format_bench\n\n");
  std::printf("command: %s\n", command.c_str());
  std::printf("cpu: %s; nproc: %u; threads used: 1\n", CpuModel().c_str(),
              std::thread::hardware_concurrency());
#ifdef NDEBUG
  std::printf("build: optimized (NDEBUG)\n");
#else
  std::printf("build: WITHOUT NDEBUG -- numbers are not representative\n");
#endif
  std::printf("libraries: lz4 %s, zstd %s, xxhash %u\n", LZ4_versionString(),
              ZSTD_versionString(), XXH_versionNumber());
  std::printf("data: %s\n", data.description.c_str());
  std::printf(
      "tensor: %llu samples of [28, 28, 1] uint8 = %.1f MiB; 8 MiB chunks, "
      "128 KiB blocks\n",
      static_cast<unsigned long long>(data.num_samples),
      data.bytes.size() / 1048576.0);
  std::printf(
      "repeats: best of %d round-robin passes (ReadRange, reference), of %d "
      "(Read in order); %.1f s of random reads (seed %llu)\n",
      config.repeats, std::max(1, config.repeats / 2), config.random_seconds,
      static_cast<unsigned long long>(config.seed));
  std::printf(
      "times: CPU time (user + sys) of the benchmark thread; file:// reads hit "
      "the page cache (the files were just written)\n\n");
}

struct Row {
  std::string codec, store;
  double stored_mib = 0;
  double range_mbps = 0, read_mbps = 0, random_per_s = 0, random_mbps = 0;
  double ref_mbps = 0, ref_xxh_mbps = 0;
};

// Decimals that show two significant digits of a ratio below 1.
int Digits(double ratio) { return ratio >= 0.1 ? 2 : ratio >= 0.01 ? 3 : 4; }

void PrintRows(const std::vector<Row>& rows) {
  std::printf(
      "| chunks | store | stored MiB | seq ReadRange MB/s | seq Read MB/s | "
      "random Read samples/s | random Read MB/s | reference | reference "
      "MB/s | ref+XXH3 MB/s | ReadRange ÷ ref | Read ÷ ref |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const char* ref_name = r.codec.empty()    ? "memcpy"
                           : r.codec == "lz4" ? "LZ4_decompress_safe"
                                              : "ZSTD_decompress";
    std::printf(
        "| %s | %s | %.1f | %.0f | %.0f | %.0f | %.1f | %s | %.0f | %.0f | "
        "%.*f | %.*f |\n",
        r.codec.empty() ? "raw" : r.codec.c_str(), r.store.c_str(),
        r.stored_mib, r.range_mbps, r.read_mbps, r.random_per_s, r.random_mbps,
        ref_name, r.ref_mbps, r.ref_xxh_mbps, Digits(r.range_mbps / r.ref_mbps),
        r.range_mbps / r.ref_mbps, Digits(r.read_mbps / r.ref_mbps),
        r.read_mbps / r.ref_mbps);
  }
  std::printf("\n");
}

// ------------------------------------------------------------- sections --

// Reopens the dataset so that a measurement starts with empty caches.
const Tensor* Reopen(const std::string& url, std::unique_ptr<Dataset>& ds) {
  ds = Check(Dataset::Open(url, {.read_only = true}), url);
  return Check(ds->tensor("images"), url);
}

Row MeasureVariant(const Config& config, const SourceData& data,
                   const std::string& codec, const std::string& store,
                   const std::string& url) {
  std::fprintf(stderr, "%s %s: building...\n",
               codec.empty() ? "raw" : codec.c_str(), store.c_str());
  auto ds = Build(url, data, codec, kDefaultMaxChunkBytes);
  const Tensor* tensor = Check(ds->tensor("images"), url);
  Verify(*tensor, data);
  const uint64_t total = data.bytes.size();
  const uint64_t batch = kDefaultMaxChunkBytes / data.sample_bytes;
  Row row{.codec = codec, .store = store};
  row.stored_mib = tensor->stats().stored_bytes / 1048576.0;
  {
    ReferenceDecoder ref(LoadChunks(*ds, *tensor));
    const std::vector<double> best = BestSeconds(
        config.repeats, {[&] { ref.Decode(false); }, [&] { ref.Decode(true); },
                         [&] { SequentialRange(*tensor, batch); }});
    row.ref_mbps = MBps(total, best[0]);
    row.ref_xxh_mbps = MBps(total, best[1]);
    row.range_mbps = MBps(total, best[2]);
  }
  tensor = Reopen(url, ds);
  const double read_s = BestSeconds(std::max(1, config.repeats / 2),
                                    {[&] { SequentialRead(*tensor); }})[0];
  row.read_mbps = MBps(total, read_s);
  tensor = Reopen(url, ds);
  const RandomResult random =
      RandomReads(*tensor, config.seed, config.random_seconds);
  row.random_per_s = random.reads / random.seconds;
  row.random_mbps = MBps(random.reads * data.sample_bytes, random.seconds);
  if (store == "mem://") Drop(*ds->store());
  return row;
}

// One 64 MiB lz4 chunk: a random sample read touches one 128 KiB block, a
// whole-chunk decode touches all of them.
void MeasureLargeChunk(const Config& config, const SourceData& data) {
  const std::string url = "mem://shoal-format-bench-large";
  std::fprintf(stderr, "large lz4 chunk: building...\n");
  auto ds =
      Build(url, data, "lz4", std::max<uint64_t>(data.bytes.size(), 4096));
  const Tensor* tensor = Check(ds->tensor("images"), url);
  if (tensor->stats().num_chunks != 1) {
    Die(Internal("expected one chunk"), "large chunk");
  }
  Verify(*tensor, data);
  ReferenceDecoder ref(LoadChunks(*ds, *tensor));
  const std::vector<double> whole = BestSeconds(
      config.repeats, {[&] { ref.Decode(false); }, [&] { ref.Decode(true); },
                       [&] { SequentialRange(*tensor, tensor->size()); }});

  tensor = Reopen(url, ds);
  const RandomResult random =
      RandomReads(*tensor, config.seed, config.random_seconds);
  const double per_sample = random.seconds / random.reads;
  const double cache_share = std::min(1.0, (8.0 * 1048576) / data.bytes.size());

  std::printf(
      "## One sample vs the whole chunk (one %.1f MiB lz4 chunk, %zu blocks of "
      "128 KiB)\n\n",
      data.bytes.size() / 1048576.0, ref.chunks()[0].header->blocks().size());
  std::printf("| operation | time | speed-up vs whole-chunk LZ4 |\n");
  std::printf("|---|---:|---:|\n");
  const auto line = [&](const std::string& what, double seconds) {
    const bool ms = seconds >= 1e-3;
    std::printf("| %s | %.*f %s | %.*f |\n", what.c_str(), ms ? 2 : 1,
                seconds * (ms ? 1e3 : 1e6), ms ? "ms" : "µs",
                whole[0] / seconds >= 10 ? 0 : 2, whole[0] / seconds);
  };
  line("whole chunk, raw LZ4_decompress_safe of every block", whole[0]);
  line("whole chunk, raw LZ4 + XXH3 of every block", whole[1]);
  line("whole chunk, Tensor::ReadRange(0, " + std::to_string(tensor->size()) +
           ")",
       whole[2]);
  line("first Tensor::Read after open (header + block)",
       random.first_read_seconds);
  line("one random Tensor::Read, mean of " + std::to_string(random.reads),
       per_sample);
  std::printf(
      "\n(the 8 MiB decoded-block cache can hold %.0f%% of this chunk, so "
      "about that share of random reads hit it)\n\n",
      cache_share * 100);
  Drop(*ds->store());
}

std::string CommandLine(int argc, char** argv) {
  std::string command = argv[0];
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  return command;
}

int Main(int argc, char** argv) {
  Config config;
  CLI::App app{"Read-path benchmark of the shoal format"};
  app.add_option("--mib", config.mib, "MiB of sample data per dataset")
      ->check(CLI::Range(1, 4096));
  app.add_option("--repeats", config.repeats,
                 "passes per sequential measurement")
      ->check(CLI::Range(1, 100));
  app.add_option("--random-seconds", config.random_seconds,
                 "time spent on random reads per variant");
  app.add_option("--seed", config.seed, "seed of the random read indices");
  app.add_option(
      "--images", config.images,
      "Fashion-MNIST IDX image file (gz); synthetic data when absent");
  app.add_option("--tmp", config.tmp_dir, "parent of the file:// temp dir");
  app.add_option("--codecs", config.codecs, "chunk compressions to measure")
      ->delimiter(',')
      ->check(CLI::IsMember({"raw", "lz4", "zstd:3"}));
  app.add_option("--stores", config.stores, "stores to measure")
      ->delimiter(',')
      ->check(CLI::IsMember({"mem", "file"}));
  app.add_flag("!--no-large-chunk", config.large_chunk,
               "skip the one-sample vs whole-chunk section");
  CLI11_PARSE(app, argc, argv);

  const SourceData data = LoadImages(config);
  PrintHeader(config, data, CommandLine(argc, argv));
  const std::string load_before = LoadAverage();
  const Stopwatch run;

  auto made = MakeTempDir(config.tmp_dir, "shoal_format_bench");
  if (!made.ok()) Die(made.status(), "setup");
  const std::string tmp = *made;
  std::vector<Row> rows;
  const auto wants = [](const std::vector<std::string>& list,
                        const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
  };
  for (const std::string name : {"raw", "lz4", "zstd:3"}) {
    if (!wants(config.codecs, name)) continue;
    const std::string codec = name == "raw" ? "" : name;
    const std::string key = name.substr(0, 4);
    for (const std::string store : {"mem", "file"}) {
      if (!wants(config.stores, store)) continue;
      const std::string url = store == "mem" ? "mem://shoal-format-bench-" + key
                                             : "file://" + tmp + "/" + key;
      rows.push_back(MeasureVariant(config, data, codec, store + "://", url));
    }
  }
  std::filesystem::remove_all(tmp);

  std::printf(
      "## Reads of the whole tensor (MB/s of decoded sample bytes)\n\n");
  PrintRows(rows);
  if (config.large_chunk) MeasureLargeChunk(config, data);
  std::printf(
      "run: %.1f s wall, %.1f s thread CPU (%.0f%% of wall; well below 100%% "
      "means other processes competed for the cores); load average %s before, "
      "%s after\n",
      run.wall(), run.cpu(), 100 * run.cpu() / run.wall(), load_before.c_str(),
      LoadAverage().c_str());
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
