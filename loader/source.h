// Sources of the write graph (loader/ingestor.h): where the samples of an
// ingestion come from. A source yields records in a defined order; each
// record (a file, or a block of rows) becomes rows of the dataset. The
// ingestor plans records on one thread, reads and prepares them in
// parallel, then appends them in order, so the dataset is a pure function
// of the source and the options.
//
//   Scan()                once, before the dataset is touched: what tensors
//                         the source fills, how many records, total bytes
//   Plan(i, record)       serial, in order (the feeder thread): what record i
//                         is (name, size); a rows source also fills its data
//   Read(record, bytes)   parallel, I/O: the record's input into `bytes`
//   Prepare(record)       parallel, CPU: decode check, conversion, probing;
//                         fills record.columns
//
// A record whose Read or Prepare fails is bad: the ingestion stops naming
// it, or with skip_bad skips, names and counts it. Errors of the dataset
// itself (in the in-order append) always stop.
//
// The built-in sources are made by the functions at the end of this file;
// a program ingests its own data with RowSource (a callback).
//
// Thread-safety: Scan() and Plan() are called by one thread at a time; Read()
// and Prepare() are const and run concurrently on different records.
#ifndef SHOAL_LOADER_SOURCE_H_
#define SHOAL_LOADER_SOURCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/registry.h"
#include "base/result.h"
#include "base/types.h"
#include "format/schema.h"

namespace shoal {

/// The samples one record adds to one tensor.
struct RecordColumn {
  enum class Kind {
    /// `count` arrays in `data`, back to back in C order: all of
    /// `sample_shape`, or of shapes[i] when `shapes` is not empty.
    kArrays,
    /// One encoded image (JPEG, PNG) in `data`, stored as the tensor's
    /// sample_compression says (Tensor::AppendEncoded).
    kEncodedImage,
    /// One video file in `data`; `sample_shape` is [frames, H, W, 3]
    /// (Tensor::AppendVideo).
    kVideo,
  };
  Kind kind = Kind::kArrays;
  uint64_t count = 1;
  Shape sample_shape;
  std::vector<Shape> shapes;
  /// The bytes: a slice of the record's read buffer, or the source's own.
  Buffer data;
  /// Info JSON of the sample when count == 1 ("" for none).
  std::string info;

  void Clear() {
    kind = Kind::kArrays;
    count = 1;
    sample_shape = Shape();
    shapes.clear();
    data = Buffer();
    info.clear();
  }
};

/// One unit of a source's work, reused from record to record (so its
/// vectors keep their capacity).
struct Record {
  /// Position in the source's order: 0, 1, 2, ...
  uint64_t index = 0;
  /// Names the record in messages and progress ("cat/001.jpg", "rows
  /// 0..65535 of train-images-idx3-ubyte.gz"); images and videos keep it in
  /// their sample info.
  std::string name;
  /// Bytes Read() will put into the record's buffer (0: Read reads nothing).
  uint64_t read_bytes = 0;
  /// Input bytes the record stands for, for throughput and ETA (a file's
  /// size; for a block of rows, its share of the input).
  uint64_t input_bytes = 0;
  /// Where the source finds the record (a path, an offset): the source's
  /// own business.
  std::string locator;
  uint64_t locator_index = 0;
  /// Filled by Prepare() (or by Plan() for sources without I/O): one column
  /// per tensor of the schema, in schema order, all of one count.
  std::vector<RecordColumn> columns;
  /// Rows the record adds (the columns' count), known after Prepare().
  uint64_t rows() const { return columns.empty() ? 0 : columns[0].count; }

  void Clear() {
    name.clear();
    read_bytes = input_bytes = locator_index = 0;
    locator.clear();
    for (auto& c : columns) c.Clear();
  }
};

/// What a source fills, found by Scan().
struct SourceScan {
  /// The tensors, in column order. Empty specs are not allowed.
  std::vector<TensorSpec> tensors;
  /// Records, when known before they are planned (a rows callback may not
  /// know).
  std::optional<uint64_t> num_records;
  /// Bytes of input in all, when known (for ETA).
  uint64_t input_bytes = 0;
  /// Files seen and left out on purpose (not images, hidden): counted.
  uint64_t ignored = 0;
  /// Inputs found bad while scanning, "name: reason" (only with skip_bad;
  /// without it, Scan fails).
  std::vector<std::string> bad;
};

class Source {
 public:
  virtual ~Source() = default;

  /// How messages name the source: "image folder '/data/train'".
  virtual std::string name() const = 0;
  /// Looks at the input before anything is written: lists files, reads
  /// headers. `skip_bad` lets it leave out unreadable inputs (listed in the
  /// result) instead of failing.
  virtual Result<SourceScan> Scan(bool skip_bad) = 0;
  /// Plans record `index` into `record` (cleared first by the caller; its
  /// index set): name, sizes, locator. Returns false past the last record.
  /// Called in order 0, 1, 2, ... except that a resumed ingestion first
  /// plans its last committed record again (to check that the source still
  /// has it, by name), then goes on from the next.
  virtual Result<bool> Plan(uint64_t index, Record& record) = 0;
  /// Reads the record's input: exactly record.read_bytes bytes into `out`
  /// (a file that changed size since Plan is an error). Errors name the
  /// record.
  virtual Status Read(const Record& record, MutableByteSpan out) const = 0;
  /// Fills record.columns from `input` (what Read() read, which stays alive
  /// and unchanged while the record is appended, so columns may slice it).
  virtual Status Prepare(Record& record, const Buffer& input) const = 0;
};

// ---- Built-in sources ----

struct ImageFolderOptions {
  /// "keep": every file's own bytes (one format gives sample_compression
  /// jpeg or png, a mix gives "image"); "jpeg" or "png": files of the other
  /// format are converted; "raw:<byte codec>" (e.g. "raw:zstd:3"): decoded
  /// pixels, chunk-compressed with that codec.
  std::string compression = "keep";
  /// JPEG encoding of converted images.
  int quality = 90;
  std::string subsampling = "4:2:0";
  /// zlib level of converted PNGs.
  int png_level = 6;
  /// Decode every kept file once to check it (ImageCodec::Check: JPEGs at
  /// 1/8 scale, which finds the same damage; converted ones are always
  /// decoded).
  bool check = true;
  uint64_t max_chunk_bytes = kDefaultMaxChunkBytes;
};
/// The JPEG and PNG files under `dir` (sorted by relative path bytes;
/// content decides the format; hidden entries skipped; top-level subfolders
/// are classes and give a `labels` tensor).
std::unique_ptr<Source> MakeImageFolderSource(std::string dir,
                                              ImageFolderOptions options = {});

struct VideoFolderOptions {
  uint64_t max_chunk_bytes = kDefaultMaxChunkBytes;
};
/// The video files under `dir` (by extension), stored as they came with a
/// frame index in each sample's info; class subfolders as for images.
std::unique_ptr<Source> MakeVideoFolderSource(std::string dir,
                                              VideoFolderOptions options = {});

struct ArrayFileOptions {
  /// Chunk codec of the array tensors ("" raw, "lz4", "zstd:5", ...).
  std::string compression = "lz4";
  /// Class names of a labels tensor (IDX labels); empty: none.
  std::vector<std::string> class_names;
  /// Rows per record: the unit of work for arrays of many small samples
  /// (fewer when that would make a record larger than 64 MiB, but at least
  /// one).
  uint64_t rows_per_record = 65536;
  uint64_t max_chunk_bytes = kDefaultMaxChunkBytes;
};
/// IDX files of the MNIST family, plain or gzip: `images` gives the tensor
/// "images" (its first dimension is the samples), `labels` (may be empty)
/// the class_label tensor "labels". Read in bounded pieces: a file lying
/// about its size fails without allocating what it claims. Where the
/// samples came from is recorded once, in the tensor's info, not per sample.
std::unique_ptr<Source> MakeIdxSource(std::string images, std::string labels,
                                      ArrayFileOptions options = {});
/// NumPy .npy files: one file whose first axis is the samples, or several
/// files (or a folder of them, sorted), one sample each. The tensor is named
/// `tensor` ("arrays" by default).
std::unique_ptr<Source> MakeNpySource(std::vector<std::string> paths,
                                      std::string tensor = "arrays",
                                      ArrayFileOptions options = {});

// ---- Sources by kind ----

/// A source described as data (a command line, a config file): its kind and
/// inputs, and the options of each kind, of which only the kind's own are
/// read.
struct SourceSpec {
  /// "images", "videos", "idx" or "npy" (SourceRegistry::Names()).
  std::string kind;
  /// images, videos: one folder. idx: the images file, then optionally the
  /// labels file. npy: one .npy of many samples, several .npy files of one
  /// sample each, or one folder of them.
  std::vector<std::string> paths;
  /// npy: the tensor's name.
  std::string tensor = "arrays";
  ImageFolderOptions images;
  VideoFolderOptions videos;
  ArrayFileOptions arrays;
};

struct SourceKind {
  static constexpr std::string_view kKind = "source kind";
  using Factory =
      std::function<Result<std::unique_ptr<Source>>(const SourceSpec&)>;
};
/// Sources by kind, each registered from its own .cc file.
using SourceRegistry = Registry<SourceKind>;
extern template class Registry<SourceKind>;

/// The source `spec` describes; InvalidArgument for an unknown kind or
/// inputs the kind does not take (e.g. two folders of images).
Result<std::unique_ptr<Source>> MakeSource(const SourceSpec& spec);

/// A program's own rows. `fill` is called on the planning thread, in order,
/// with index 0, 1, 2, ... (when resuming: the last committed index, then
/// on from the next) and fills record.columns (one per tensor of
/// `tensors`) and record.name; it returns false when there are no more
/// records. Columns
/// own their bytes (Buffer), which the ingestor keeps until appended.
using RowFill = std::function<Result<bool>(uint64_t index, Record& record)>;
std::unique_ptr<Source> MakeRowSource(std::string name,
                                      std::vector<TensorSpec> tensors,
                                      RowFill fill,
                                      std::optional<uint64_t> num_records = {});

}  // namespace shoal

#endif  // SHOAL_LOADER_SOURCE_H_
