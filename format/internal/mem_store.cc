// "mem://NAME": a store held in process memory, for tests and scratch data.
//
// Every OpenStore("mem://NAME") returns the same store object, so a dataset
// written through one handle is visible through any other until the process
// exits. Objects are immutable Buffers: reads hand out zero-copy slices, and a
// buffer read before an overwrite or delete keeps the old bytes alive.
#include "format/internal/mem_store.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>

#include "format/store.h"

namespace shoal {
namespace {

class MemStore final : public Store {
 public:
  explicit MemStore(std::string name) : name_(std::move(name)) {}

  std::string url() const override { return "mem://" + name_; }

  Result<Buffer> Read(std::string_view key) const override { return Find(key); }

  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    SHOAL_ASSIGN_OR_RETURN(Buffer object, Find(key));
    if (offset > object.size() || length > object.size() - offset) {
      return OutOfRange("range [" + std::to_string(offset) + ", +" +
                        std::to_string(length) + ") passes the end of '" +
                        std::string(key) + "' (" +
                        std::to_string(object.size()) + " bytes) in " + url());
    }
    return object.Slice(offset, length);
  }

  Result<uint64_t> Size(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(Buffer object, Find(key));
    return static_cast<uint64_t>(object.size());
  }

  Result<bool> Exists(std::string_view key) const override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    std::shared_lock lock(mu_);
    return objects_.find(key) != objects_.end();
  }

  Status Write(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    SHOAL_ASSIGN_OR_RETURN(Buffer object, Copy(data));
    Buffer replaced;  // Freed after the lock is released.
    {
      std::unique_lock lock(mu_);
      auto [it, inserted] = objects_.try_emplace(std::string(key));
      replaced = std::exchange(it->second, std::move(object));
    }
    return Status::OK();
  }

  // Memory has no crash to survive, so every write is already as durable as
  // this store can make it.
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    return Write(key, data);
  }

  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    SHOAL_ASSIGN_OR_RETURN(Buffer object, Copy(data));
    {
      std::unique_lock lock(mu_);
      auto [it, inserted] = objects_.try_emplace(std::string(key));
      if (inserted) {
        it->second = std::move(object);
        return Status::OK();
      }
    }
    return AlreadyExists("object '" + std::string(key) +
                         "' already exists in " + url());
  }
  Status Sync() override { return Status::OK(); }

  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    std::vector<std::string> keys;
    std::shared_lock lock(mu_);
    for (auto it = objects_.lower_bound(prefix);
         it != objects_.end() && it->first.starts_with(prefix); ++it) {
      keys.push_back(it->first);
    }
    return keys;
  }

  Status Delete(std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    Buffer removed;  // Freed after the lock is released.
    {
      std::unique_lock lock(mu_);
      auto it = objects_.find(key);
      if (it == objects_.end()) return NotFoundError(key);
      removed = std::move(it->second);
      objects_.erase(it);
    }
    return Status::OK();
  }

  void Clear() {
    // Declared first so the buffers are freed after the lock is released.
    std::map<std::string, Buffer, std::less<>> dropped;
    std::unique_lock lock(mu_);
    dropped.swap(objects_);
  }

 private:
  // Copies before any lock is taken, so readers are never blocked by a
  // memcpy.
  static Result<Buffer> Copy(ByteSpan data) {
    SHOAL_ASSIGN_OR_RETURN(MutableBuffer copy,
                           MutableBuffer::Allocate(data.size()));
    if (!data.empty()) std::memcpy(copy.data(), data.data(), data.size());
    return std::move(copy).Freeze();
  }

  Result<Buffer> Find(std::string_view key) const {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    std::shared_lock lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NotFoundError(key);
    return it->second;
  }

  Status NotFoundError(std::string_view key) const {
    return NotFound("no object '" + std::string(key) + "' in " + url());
  }

  const std::string name_;
  mutable std::shared_mutex mu_;
  std::map<std::string, Buffer, std::less<>> objects_;
};

struct NamedStores {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<MemStore>, std::less<>> stores;
};

NamedStores& GetNamedStores() {
  // Never destroyed: the contract is "until the process exits", and stores
  // may still be used from other static destructors.
  static NamedStores* named = new NamedStores;
  return *named;
}

// mem:// stores always exist (an empty one holds no dataset), so `create`
// changes nothing.
Result<std::shared_ptr<Store>> OpenMemStore(std::string_view name,
                                            const StoreOptions&) {
  if (name.empty()) {
    return InvalidArgument("mem:// needs a store name (mem://NAME)");
  }
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      return InvalidArgument("mem:// store names must be printable ASCII");
    }
  }
  NamedStores& named = GetNamedStores();
  std::lock_guard<std::mutex> lock(named.mu);
  auto it = named.stores.find(name);
  if (it == named.stores.end()) {
    it = named.stores
             .emplace(std::string(name),
                      std::make_shared<MemStore>(std::string(name)))
             .first;
  }
  return std::shared_ptr<Store>(it->second);
}

[[maybe_unused]] const bool kRegistered =
    StoreRegistry::Register("mem", OpenMemStore);

}  // namespace

void ResetMemStoreForTesting(std::string_view name) {
  std::shared_ptr<MemStore> store;
  {
    NamedStores& named = GetNamedStores();
    std::lock_guard<std::mutex> lock(named.mu);
    auto it = named.stores.find(name);
    if (it == named.stores.end()) return;
    store = it->second;
  }
  store->Clear();
}

}  // namespace shoal
