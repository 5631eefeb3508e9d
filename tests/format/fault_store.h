// A store that fails on purpose, for the fault-injection tests of every
// layer (loader, ingestion, repair): "faultmem://NAME" forwards to
// mem://NAME and fails the k-th operation of one class (reads, writes,
// deletes or lists) in a chosen way.
//
// Reads count every Read, ReadRange and range of a ReadRanges; writes every
// Write, WriteAtomic and WriteIfAbsent; deletes every Delete; lists every
// List. Writes and deletes of the write lock's objects ("LOCK...") are left
// alone, so a fault never strands a lock the test did not mean to. Faults:
//  - kEio, kEnospc: the operation fails as the OS would say it, nothing done.
//  - kShortRead: the read returns its bytes less the last (a store that
//    breaks its contract; checksums and sizes must catch it).
//  - kFlipByte: the read returns its bytes with one flipped (bit rot).
//  - kTornWrite: the first half of the object is written, then EIO (a
//    store that breaks atomicity).
//  - kStaleList: the list leaves out its last key (an eventually consistent
//    listing).
//  - kLostAnswer: the write is done, then reported as EIO (a timeout or a
//    lost answer after the store acted).
//
// Thread-safety: thread-safe; the plan is global to the process (one test
// at a time arms it).
#ifndef SHOAL_TESTS_FORMAT_FAULT_STORE_H_
#define SHOAL_TESTS_FORMAT_FAULT_STORE_H_

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "format/store.h"

namespace shoal::fault_store {

enum class Op { kRead, kWrite, kDelete, kList };
enum class Fault {
  kEio,
  kEnospc,
  kShortRead,
  kFlipByte,
  kTornWrite,
  kStaleList,
  kLostAnswer
};

inline const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kEio:
      return "EIO";
    case Fault::kEnospc:
      return "ENOSPC";
    case Fault::kShortRead:
      return "short read";
    case Fault::kFlipByte:
      return "flipped byte";
    case Fault::kTornWrite:
      return "torn write";
    case Fault::kStaleList:
      return "stale list";
    case Fault::kLostAnswer:
      return "lost answer";
  }
  return "?";
}

/// What to fail: operation number `at` (1-based) of class `op` after Arm().
struct Plan {
  std::atomic<int> op{static_cast<int>(Op::kRead)};
  std::atomic<int> fault{static_cast<int>(Fault::kEio)};
  std::atomic<int64_t> at{0};  // 0: never
  std::atomic<int64_t> count[4] = {0, 0, 0, 0};
  std::atomic<int> fired{0};
  std::string fired_key;  // set once, before `fired`
};

inline Plan& plan() {
  static Plan p;
  return p;
}

/// Counts from zero and fails operation `at` of `op` with `fault`; at = 0
/// only counts.
inline void Arm(Op op, Fault fault, int64_t at) {
  Plan& p = plan();
  p.at = 0;
  for (auto& c : p.count) c = 0;
  p.fired = 0;
  p.op = static_cast<int>(op);
  p.fault = static_cast<int>(fault);
  p.at = at;
}
inline void Disarm() { plan().at = 0; }
inline int64_t Count(Op op) { return plan().count[static_cast<int>(op)]; }
inline bool Fired() { return plan().fired != 0; }

class FaultStore final : public ForwardingStore {
 public:
  FaultStore(std::shared_ptr<Store> inner, std::string name)
      : ForwardingStore(std::move(inner)), name_(std::move(name)) {}
  std::string url() const override { return "faultmem://" + name_; }

  Result<Buffer> Read(std::string_view key) const override {
    return Mangle(key, ForwardingStore::Read(key));
  }
  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    return Mangle(key, ForwardingStore::ReadRange(key, offset, length));
  }
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const override {
    auto out = ForwardingStore::ReadRanges(ranges, allocate);
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = Mangle(ranges[i].key, std::move(out[i]));
    }
    return out;
  }
  Status Write(std::string_view key, ByteSpan data) override {
    return WriteWith(
        key, data, [&](ByteSpan d) { return ForwardingStore::Write(key, d); });
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    return WriteWith(key, data, [&](ByteSpan d) {
      return ForwardingStore::WriteAtomic(key, d);
    });
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    return WriteWith(key, data, [&](ByteSpan d) {
      return ForwardingStore::WriteIfAbsent(key, d);
    });
  }
  Status Delete(std::string_view key) override {
    if (!key.starts_with("LOCK") && Hit(Op::kDelete, key)) {
      return FaultStatus("delete", key);
    }
    return ForwardingStore::Delete(key);
  }
  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    auto keys = ForwardingStore::List(prefix);
    if (!Hit(Op::kList, prefix)) return keys;
    if (CurrentFault() != Fault::kStaleList) {
      return FaultStatus("list", prefix);
    }
    if (keys.ok() && !keys->empty()) keys->pop_back();
    return keys;
  }

 private:
  static Fault CurrentFault() {
    return static_cast<Fault>(plan().fault.load());
  }

  // Counts the operation; true when it is the one to fail.
  static bool Hit(Op op, std::string_view key) {
    Plan& p = plan();
    const int64_t n = ++p.count[static_cast<int>(op)];
    if (p.at == 0 || n != p.at || p.op != static_cast<int>(op)) return false;
    if (p.fired == 0) {
      p.fired_key = std::string(key);
      p.fired = 1;
    }
    return true;
  }
  static Status FaultStatus(std::string_view what, std::string_view key) {
    const int err = CurrentFault() == Fault::kEnospc ? ENOSPC : EIO;
    return ErrnoStatus(std::string(what) + " '" + std::string(key) + "'", err);
  }
  Result<Buffer> Mangle(std::string_view key, Result<Buffer> read) const {
    if (!read.ok() || !Hit(Op::kRead, key)) return read;
    switch (CurrentFault()) {
      case Fault::kShortRead:
        if (read->size() == 0) return read;
        return read->Slice(0, read->size() - 1);
      case Fault::kFlipByte: {
        if (read->size() == 0) return read;
        std::string bytes(reinterpret_cast<const char*>(read->data()),
                          read->size());
        bytes[bytes.size() / 2] =
            static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
        return Buffer::FromString(std::move(bytes));
      }
      default:
        return FaultStatus("read", key);
    }
  }
  template <typename Fn>
  Status WriteWith(std::string_view key, ByteSpan data, const Fn& write) {
    if (key.starts_with("LOCK") || !Hit(Op::kWrite, key)) return write(data);
    if (CurrentFault() == Fault::kTornWrite) {
      (void)write(data.subspan(0, data.size() / 2));
      return ErrnoStatus("write '" + std::string(key) + "'", EIO);
    }
    if (CurrentFault() == Fault::kLostAnswer) {
      (void)write(data);
      return ErrnoStatus("write '" + std::string(key) + "'", EIO);
    }
    return FaultStatus("write", key);
  }

  std::string name_;
};

/// Registers the "faultmem" scheme once per process.
inline void Register() {
  static const bool registered = [] {
    StoreRegistry::Register(
        "faultmem",
        [](std::string_view location,
           const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
          SHOAL_ASSIGN_OR_RETURN(
              auto inner, OpenStore("mem://" + std::string(location), options));
          return std::shared_ptr<Store>(
              std::make_shared<FaultStore>(inner, std::string(location)));
        });
    return true;
  }();
  (void)registered;
}

}  // namespace shoal::fault_store

#endif  // SHOAL_TESTS_FORMAT_FAULT_STORE_H_
