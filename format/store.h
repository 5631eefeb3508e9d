// Store: where a dataset's objects (metadata, chunk indexes, chunks) live.
// Opened by URL; each URL scheme is a plug-in registered by name, so a new
// store touches no existing file.
//
//   mem://NAME        in-process; every Open of the same NAME sees the same
//                     objects until the process exits (tests, scratch data).
//   file:///ABS/PATH  a directory; plain paths (absolute or relative) mean
//                     the same.
//   s3://BUCKET/PREFIX  objects of an S3 bucket or S3-compatible server
//                     (format/internal/s3_store.cc; settings in README).
//   gs://BUCKET/PREFIX  the same through Google Cloud Storage's XML API.
//
// Keys are '/'-separated relative paths of printable ASCII (UTF-8 is not
// accepted, deliberately: keys are shoal's own names), at most 1024 bytes:
// no leading '/', no empty, '.' or '..' components, no backslash, and no
// last component starting with ".tmp." (reserved for in-flight writes).
// A key must not also be a "directory" of another key ("a" and "a/b"):
// file:// cannot hold both.
//
// Durability contract (the commit protocol in format/FORMAT.md relies on it):
//  - Write() makes the object visible atomically (a reader sees the old
//    object, nothing, or the whole new one, never a part) and its bytes
//    durable; the directory entry becomes durable at the next Sync().
//  - WriteAtomic() is Write() followed by making the name durable at once:
//    after it returns, a crash leaves either the old or the new object.
//  - Sync() makes every earlier Write() through this Store object durable,
//    names included (two opens of one directory track their writes apart).
//  - WriteIfAbsent() is WriteAtomic() that never replaces: of any number of
//    racing creators of one key, in this process or others sharing the
//    store, exactly one succeeds. It is the one primitive that lets
//    processes agree on something (the dataset write lock, format/lock.h).
//
// Thread-safety: every method of every Store is thread-safe. Objects are
// meant to be written once (chunks) or replaced whole (the commit pointer);
// concurrent writers of one key get last-writer-wins, except through
// WriteIfAbsent().
#ifndef SHOAL_FORMAT_STORE_H_
#define SHOAL_FORMAT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/registry.h"
#include "base/result.h"

namespace shoal {

/// One range of one object, for Store::ReadRanges().
struct RangeRead {
  std::string_view key;
  uint64_t offset = 0;
  uint64_t length = 0;
};

/// One object of a Store::WriteMany() call.
struct ObjectWrite {
  std::string_view key;
  ByteSpan data;
};

class Store {
 public:
  virtual ~Store() = default;

  /// The URL this store was opened with, normalized (e.g. file:///abs/path).
  virtual std::string url() const = 0;

  /// The whole object. NotFound when `key` does not exist.
  virtual Result<Buffer> Read(std::string_view key) const = 0;
  /// Exactly `length` bytes at `offset`. OutOfRange when the range passes
  /// the end of the object (a short read is never returned).
  virtual Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                                   uint64_t length) const = 0;
  /// Every range as ReadRange() reads it, one result per range, in order.
  /// A store whose requests wait on a network (s3://) has them in flight
  /// together, so a set of reads costs about one round trip instead of one
  /// each; the default reads them in turn.
  /// The bytes go into buffers from `allocate` where the store copies them
  /// (a network's), else they may be mapped or shared (file://, mem://).
  virtual std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const;
  /// Every object as Read() reads it, one result per key, in order. In
  /// flight together where ReadRanges() is (s3://: opening a dataset reads
  /// its tensors' indexes in one round trip rather than one each).
  virtual std::vector<Result<Buffer>> ReadMany(
      std::span<const std::string_view> keys) const;
  /// The object's size in bytes; NotFound when missing.
  virtual Result<uint64_t> Size(std::string_view key) const = 0;
  virtual Result<bool> Exists(std::string_view key) const = 0;

  /// Creates or replaces `key` with `data` (see the durability contract).
  virtual Status Write(std::string_view key, ByteSpan data) = 0;
  /// Write() whose name is durable when it returns.
  virtual Status WriteAtomic(std::string_view key, ByteSpan data) = 0;
  /// Creates `key` with `data`, durable like WriteAtomic(), unless it exists:
  /// then AlreadyExists and the object is left as it was. A reader sees no
  /// object or the whole new one. Racing calls for one key: exactly one
  /// succeeds, and the object holds its bytes.
  virtual Status WriteIfAbsent(std::string_view key, ByteSpan data) = 0;
  /// Makes all earlier writes durable.
  virtual Status Sync() = 0;
  /// Every object as Write() writes it, one status per write, in order; a
  /// failed write does not stop the others. A store whose requests wait on
  /// a network (s3://) has them in flight together; the default writes them
  /// in turn.
  virtual std::vector<Status> WriteMany(std::span<const ObjectWrite> writes);

  /// Keys that start with `prefix`, sorted. An empty prefix lists all.
  /// Leftovers of interrupted writes (temporary files) are not listed.
  virtual Result<std::vector<std::string>> List(
      std::string_view prefix) const = 0;
  /// Removes `key`; NotFound when missing.
  virtual Status Delete(std::string_view key) = 0;
  /// Removes every key, one status per key, in order; a key already missing
  /// counts as removed. In flight together where WriteMany() is.
  virtual std::vector<Status> DeleteMany(std::span<const std::string> keys);

  /// What interrupted writes left under `prefix` that List() hides (a file
  /// store's temporary files), sorted; none for stores that leave nothing.
  /// Only for repair, with the dataset's write lock held: a running writer's
  /// temporary files look the same.
  virtual Result<std::vector<std::string>> ListLeftovers(
      std::string_view prefix) const {
    (void)prefix;
    return std::vector<std::string>();
  }
  /// Removes one name ListLeftovers() returned; InvalidArgument for any
  /// other name.
  virtual Status DeleteLeftover(std::string_view name);

  /// How many reads in flight can still pay off: a store whose reads wait
  /// on a network hides that latency behind many, a local one gains nothing
  /// beyond a disk's queue. The loader's adaptive fetch grows up to this,
  /// and each fetch worker is a thread of its pool: every idle thread costs
  /// memory (its stack, and the malloc arena it fills).
  virtual int useful_reads_in_flight() const { return 8; }
};

/// A store that forwards every call to another: the base of wrappers
/// (fault injection, latency, counting) that override only what they change.
/// ReadMany(), WriteMany() and DeleteMany() are not forwarded: they go
/// through the wrapper's Read(), Write() and Delete(), one at a time, so
/// that a wrapper that changes those sees every read, write and delete.
/// Thread-safe as the inner store is.
class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(std::shared_ptr<Store> inner)
      : inner_(std::move(inner)) {}

  std::string url() const override { return inner_->url(); }
  Result<Buffer> Read(std::string_view key) const override {
    return inner_->Read(key);
  }
  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    return inner_->ReadRange(key, offset, length);
  }
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const override {
    return inner_->ReadRanges(ranges, allocate);
  }
  Result<uint64_t> Size(std::string_view key) const override {
    return inner_->Size(key);
  }
  Result<bool> Exists(std::string_view key) const override {
    return inner_->Exists(key);
  }
  Status Write(std::string_view key, ByteSpan data) override {
    return inner_->Write(key, data);
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    return inner_->WriteAtomic(key, data);
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    return inner_->WriteIfAbsent(key, data);
  }
  Status Sync() override { return inner_->Sync(); }
  int useful_reads_in_flight() const override {
    return inner_->useful_reads_in_flight();
  }
  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    return inner_->List(prefix);
  }
  Status Delete(std::string_view key) override { return inner_->Delete(key); }
  Result<std::vector<std::string>> ListLeftovers(
      std::string_view prefix) const override {
    return inner_->ListLeftovers(prefix);
  }
  Status DeleteLeftover(std::string_view name) override {
    return inner_->DeleteLeftover(name);
  }

  const std::shared_ptr<Store>& inner() const { return inner_; }

 private:
  std::shared_ptr<Store> inner_;
};

struct StoreOptions {
  /// Create the store's location (e.g. the directory) when it is missing.
  /// Without it, a missing location is NotFound and nothing is created, so
  /// a read of a mistyped path leaves no trace.
  bool create = true;
};

/// Opens the store that `url` names. The scheme picks the implementation;
/// a URL without "scheme://" is a file path.
Result<std::shared_ptr<Store>> OpenStore(std::string_view url,
                                         const StoreOptions& options = {});

/// InvalidArgument unless `key` is a valid object key (see above).
Status ValidateStoreKey(std::string_view key);

struct StoreKind {
  static constexpr std::string_view kKind = "store scheme";
  /// Receives the URL with "scheme://" removed.
  using Factory = std::function<Result<std::shared_ptr<Store>>(
      std::string_view location, const StoreOptions& options)>;
};
/// Store implementations by URL scheme ("mem", "file"), each registered from
/// its own .cc file.
using StoreRegistry = Registry<StoreKind>;
extern template class Registry<StoreKind>;

}  // namespace shoal

#endif  // SHOAL_FORMAT_STORE_H_
