// "file:///ABS/PATH": a store whose objects are files under a root directory;
// key "a/b" is the file ROOT/a/b.
//
// Write() writes a temporary file beside the target, fsyncs it and renames it
// over the target, so a reader sees the old object or the whole new one. The
// rename, and any directory created for it, becomes durable once every
// directory from the target's parent up to the root is fsynced: at once in
// WriteAtomic(), in Sync() for every directory touched since the last Sync().
// Fsyncing the whole chain (not only the directories this store object
// created) keeps a write durable even when a concurrent writer created its
// parent directory and has not yet recorded that.
//
// Reads of 1 MiB and more (whole chunks, runs of blocks) map the file
// instead of copying it: the bytes come straight from the page cache, with
// no buffer to allocate and fill. This relies on objects never changing in
// place (Write() renames a new file over the old one; a reader keeps the
// file it mapped): a file truncated under a mapping by some other program
// would fault the reader on access.
//
// WriteIfAbsent() writes the same temporary file but publishes it with
// renameat2(RENAME_NOREPLACE), which fails with EEXIST instead of replacing:
// the kernel decides which of several racing creators wins, across
// processes. Filesystems without that flag fall back to link(2), which has
// the same create-or-fail meaning (the temp name is then unlinked). Creating
// the target itself with O_EXCL would also decide the race, but readers could
// then see it half written.
//
// Temporary files are named ".tmp.<key basename>.<pid>.<random>". A crash can
// leave them behind, so List() hides every name starting with ".tmp.", and
// keys whose last component starts with ".tmp." are refused;
// ListLeftovers() and DeleteLeftover() are how `verify --repair` finds and
// removes them.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/random.h"
#include "format/internal/posix.h"
#include "format/store.h"

namespace shoal {

// Reads of at least this many bytes map the file (see the file comment).
constexpr uint64_t kMapReadBytes = 1 << 20;
namespace {

namespace fs = std::filesystem;
using internal::Basename;
using internal::Dirname;
using internal::FsyncFd;
using internal::MakeDirs;
using internal::OpenRetrying;
using internal::PreadFull;
using internal::TempFileGuard;
using internal::UniqueFd;
using internal::WriteAll;

constexpr std::string_view kTempPrefix = ".tmp.";
// Keeps temp names under NAME_MAX (255) even for long key basenames.
constexpr size_t kMaxTempBasename = 96;
// O_NONBLOCK so that a FIFO someone left under the root cannot hang a read;
// it changes nothing for regular files.
constexpr int kReadFlags = O_RDONLY | O_NONBLOCK;

// For lookups, a path through a regular file ("a/b" when "a" is an object)
// or onto a directory names no object, exactly like a missing file.
Status LookupErrno(std::string_view what, int errnum) {
  if (errnum == ENOTDIR || errnum == EISDIR) errnum = ENOENT;
  return ErrnoStatus(what, errnum);
}

Status NoObject(std::string_view path) {
  return NotFound(std::string(path) + ": not a regular file");
}

Result<UniqueFd> OpenForLookup(const std::string& path, int flags) {
  const int fd = OpenRetrying(path, flags);
  if (fd < 0) return LookupErrno("open " + path, errno);
  return UniqueFd(fd);
}

Status FsyncDir(const std::string& dir) {
  Result<UniqueFd> fd = OpenForLookup(dir, O_RDONLY | O_DIRECTORY);
  // A directory removed since it was written to has no entries left to make
  // durable.
  if (!fd.ok() && fd.status().code() == StatusCode::kNotFound) {
    return Status::OK();
  }
  SHOAL_RETURN_IF_ERROR(fd.status());
  while (::fsync(fd->get()) != 0) {
    if (errno == EINTR) continue;
    // Some filesystems cannot fsync a directory; their renames are as
    // durable as they will ever be.
    if (errno == EINVAL) break;
    return ErrnoStatus("fsync " + dir, errno);
  }
  return Status::OK();
}

// The last 64 bits of a temp name. Unique within the process (a counter
// through a bijective mix); the per-process seed keeps a reused pid from
// colliding with a crashed process's leftovers, and O_EXCL catches the rest.
uint64_t NextTempId() {
  static const uint64_t seed = [] {
    uint64_t s = 0;
    if (::getentropy(&s, sizeof(s)) != 0) {
      s = static_cast<uint64_t>(::time(nullptr)) * SplitMix64::kGolden;
    }
    return s;
  }();
  static std::atomic<uint64_t> counter{0};
  // The counter-th output of a SplitMix64 seeded with `seed`, without a
  // lock around a shared generator.
  return SplitMix64::Mix(seed +
                         SplitMix64::kGolden * (counter.fetch_add(1) + 1));
}

std::string TempPath(std::string_view target) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), ".%ld.%016llx",
                static_cast<long>(::getpid()),
                static_cast<unsigned long long>(NextTempId()));
  std::string path(Dirname(target));
  path += '/';
  path += kTempPrefix;
  path += Basename(target).substr(0, kMaxTempBasename);
  path += suffix;
  return path;
}

class FileStore final : public Store {
 public:
  /// `root` is absolute and normalized and exists as a durable directory.
  explicit FileStore(std::string root) : root_(std::move(root)) {}

  std::string url() const override { return "file://" + root_; }

  Result<Buffer> Read(std::string_view key) const override {
    SHOAL_RETURN_IF_ERROR(CheckKey(key));
    const std::string path = Path(key);
    SHOAL_ASSIGN_OR_RETURN(UniqueFd fd, OpenForLookup(path, kReadFlags));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, RegularFileSize(fd.get(), path));
    SHOAL_ASSIGN_OR_RETURN(MutableBuffer buffer, MutableBuffer::Allocate(size));
    SHOAL_ASSIGN_OR_RETURN(size_t got,
                           PreadFull(fd.get(), buffer.span(), 0, path));
    std::byte extra;
    SHOAL_ASSIGN_OR_RETURN(size_t more,
                           PreadFull(fd.get(), {&extra, 1}, size, path));
    if (got != size || more != 0) {
      // Objects are replaced by rename, so only an outside writer changes an
      // open file; what was read may be a mix of two versions.
      return IOError("read " + path + ": file changed size during the read (" +
                     std::to_string(size) + " bytes expected)");
    }
    return std::move(buffer).Freeze();
  }

  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    return ReadRangeInto(key, offset, length, {});
  }

  // Reads below the mapping threshold are copied into buffers from
  // `allocate` (a loader's recycled ones: fresh heap buffers for every
  // small chunk left malloc's arenas fragmented, a reader's RSS growing
  // with the chunk count).
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate) const override {
    std::vector<Result<Buffer>> out;
    out.reserve(ranges.size());
    for (const RangeRead& r : ranges) {
      out.push_back(ReadRangeInto(r.key, r.offset, r.length, allocate));
    }
    return out;
  }

  // A read-only private mapping of [offset, offset + length) of `fd`, alive
  // as long as the Buffer (or a slice of it). The caller checked the range.
  static Result<Buffer> MapRange(int fd, uint64_t offset, uint64_t length) {
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t start = offset / page * page;
    const size_t mapped = static_cast<size_t>(offset + length - start);
    // MAP_POPULATE: the fetch stage reads the whole range anyway; one call
    // sets up its page tables instead of a fault per page.
    void* p = mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd,
                   static_cast<off_t>(start));
    if (p == MAP_FAILED) return ErrnoStatus("mmap", errno);
    std::shared_ptr<const void> owner(
        p, [mapped](const void* q) { munmap(const_cast<void*>(q), mapped); });
    return Buffer::FromOwner(
        std::move(owner), static_cast<const std::byte*>(p) + (offset - start),
        static_cast<size_t>(length));
  }

  Result<uint64_t> Size(std::string_view key) const override {
    SHOAL_RETURN_IF_ERROR(CheckKey(key));
    const std::string path = Path(key);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return LookupErrno("stat " + path, errno);
    }
    if (!S_ISREG(st.st_mode)) return NoObject(path);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<bool> Exists(std::string_view key) const override {
    Result<uint64_t> size = Size(key);
    if (size.ok()) return true;
    if (size.status().code() == StatusCode::kNotFound) return false;
    return size.status();
  }

  Status Write(std::string_view key, ByteSpan data) override {
    SHOAL_ASSIGN_OR_RETURN(std::string parent, WriteFile(key, data));
    std::lock_guard<std::mutex> lock(dirty_mu_);
    dirty_.insert(std::move(parent));
    return Status::OK();
  }

  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    SHOAL_ASSIGN_OR_RETURN(std::string parent, WriteFile(key, data));
    std::set<std::string> chain;
    AddWithAncestors(parent, &chain);
    return SyncDirs(std::move(chain));
  }

  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    SHOAL_ASSIGN_OR_RETURN(std::string parent,
                           WriteFile(key, data, Publish::kNoReplace));
    std::set<std::string> chain;
    AddWithAncestors(parent, &chain);
    return SyncDirs(std::move(chain));
  }

  Status Sync() override {
    std::set<std::string> dirty;
    {
      std::lock_guard<std::mutex> lock(dirty_mu_);
      dirty.swap(dirty_);
    }
    std::set<std::string> chains;
    for (const std::string& dir : dirty) AddWithAncestors(dir, &chains);
    return SyncDirs(std::move(chains));
  }

  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    return ListUnder(prefix, /*leftovers=*/false);
  }

  Result<std::vector<std::string>> ListLeftovers(
      std::string_view prefix) const override {
    return ListUnder(prefix, /*leftovers=*/true);
  }

  Status DeleteLeftover(std::string_view name) override {
    if (!ValidateStoreKey(name).ok() ||
        !Basename(name).starts_with(kTempPrefix)) {
      return Store::DeleteLeftover(name);
    }
    return Unlink(Path(name));
  }

  Status Delete(std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(CheckKey(key));
    return Unlink(Path(key));
  }

 private:
  Result<Buffer> ReadRangeInto(std::string_view key, uint64_t offset,
                               uint64_t length,
                               const BufferAllocator& allocate) const {
    SHOAL_RETURN_IF_ERROR(CheckKey(key));
    const std::string path = Path(key);
    SHOAL_ASSIGN_OR_RETURN(UniqueFd fd, OpenForLookup(path, kReadFlags));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, RegularFileSize(fd.get(), path));
    if (offset > size || length > size - offset) {
      return OutOfRange("range [" + std::to_string(offset) + ", +" +
                        std::to_string(length) + ") passes the end of " + path +
                        " (" + std::to_string(size) + " bytes)");
    }
    if (length >= kMapReadBytes) return MapRange(fd.get(), offset, length);
    SHOAL_ASSIGN_OR_RETURN(
        MutableBuffer buffer,
        allocate ? allocate(length) : MutableBuffer::Allocate(length));
    SHOAL_ASSIGN_OR_RETURN(size_t got,
                           PreadFull(fd.get(), buffer.span(), offset, path));
    if (got != length) {
      return IOError("read " + path + ": file shrank during the read");
    }
    return std::move(buffer).Freeze();
  }

  Status Unlink(const std::string& path) {
    if (::unlink(path.c_str()) != 0) {
      return LookupErrno("unlink " + path, errno);
    }
    std::lock_guard<std::mutex> lock(dirty_mu_);
    dirty_.emplace(Dirname(path));
    return Status::OK();
  }

  static Status CheckKey(std::string_view key) {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    if (Basename(key).starts_with(kTempPrefix)) {
      return InvalidArgument("invalid store key '" + std::string(key) +
                             "': names starting with '.tmp.' are reserved "
                             "for temporary files in file:// stores");
    }
    return Status::OK();
  }

  std::string Path(std::string_view key) const {
    std::string path = root_;
    if (path.back() != '/') path += '/';
    path.append(key);
    return path;
  }

  static Result<uint64_t> RegularFileSize(int fd, const std::string& path) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoStatus("fstat " + path, errno);
    if (!S_ISREG(st.st_mode)) return NoObject(path);
    return static_cast<uint64_t>(st.st_size);
  }

  // Adds `dir` and its ancestors up to the root to `dirs`.
  void AddWithAncestors(std::string_view dir,
                        std::set<std::string>* dirs) const {
    while (dirs->emplace(dir).second && dir.size() > root_.size()) {
      dir = Dirname(dir);
    }
  }

  enum class Publish { kReplace, kNoReplace };

  // Writes `data` to `key` through a temp file and rename (for kNoReplace:
  // a rename that refuses an existing target, see the file comment). Returns
  // the directory whose entry changed; it is durable only once fsynced.
  Result<std::string> WriteFile(std::string_view key, ByteSpan data,
                                Publish publish = Publish::kReplace) {
    SHOAL_RETURN_IF_ERROR(CheckKey(key));
    const std::string path = Path(key);
    std::string temp;
    UniqueFd fd;
    bool made_dirs = false;
    // Retries cover a missing parent directory (created once, then retried)
    // and a temp name collision (astronomically rare).
    for (int attempt = 0;; ++attempt) {
      temp = TempPath(path);
      const int raw = OpenRetrying(temp, O_WRONLY | O_CREAT | O_EXCL, 0666);
      if (raw >= 0) {
        fd = UniqueFd(raw);
        break;
      }
      const int open_errno = errno;
      if ((open_errno == ENOENT || open_errno == ENOTDIR) && !made_dirs) {
        made_dirs = true;
        // New directories need no record: Sync() fsyncs the whole chain.
        SHOAL_RETURN_IF_ERROR(MakeDirs(root_, Dirname(key), nullptr));
        continue;
      }
      if (open_errno == EEXIST && attempt < 8) continue;
      return ErrnoStatus("open " + temp, open_errno);
    }
    TempFileGuard guard(temp);
    SHOAL_RETURN_IF_ERROR(WriteAll(fd.get(), data, temp));
    SHOAL_RETURN_IF_ERROR(FsyncFd(fd.get(), temp));
    SHOAL_RETURN_IF_ERROR(fd.Close(temp));
    if (publish == Publish::kNoReplace) {
      SHOAL_RETURN_IF_ERROR(RenameNoReplace(temp, path));
    } else if (::rename(temp.c_str(), path.c_str()) != 0) {
      const int rename_errno = errno;
      if (rename_errno == EISDIR) return DirectoryInTheWay(path);
      return ErrnoStatus("rename " + temp + " to " + path, rename_errno);
    }
    guard.Dismiss();
    return std::string(Dirname(path));
  }

  static Status DirectoryInTheWay(const std::string& path) {
    return FailedPrecondition("cannot write " + path +
                              ": a directory of that name exists");
  }

  // Moves `temp` to `path` unless `path` exists. `temp` is left to the
  // caller's guard on failure.
  static Status RenameNoReplace(const std::string& temp,
                                const std::string& path) {
    int publish_errno = 0;
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(),
                    RENAME_NOREPLACE) != 0) {
      publish_errno = errno;
      // EINVAL: this filesystem has no RENAME_NOREPLACE (ENOSYS: nor this
      // kernel renameat2).
      if (publish_errno == EINVAL || publish_errno == ENOSYS) {
        publish_errno = ::link(temp.c_str(), path.c_str()) == 0 ? 0 : errno;
        // The object now has both names; the temp one goes, or a crash
        // leaves it hidden like any other leftover.
        if (publish_errno == 0) ::unlink(temp.c_str());
      }
    }
    if (publish_errno == 0) return Status::OK();
    if (publish_errno == EEXIST) {
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return DirectoryInTheWay(path);
      }
      return AlreadyExists(path + " already exists");
    }
    return ErrnoStatus("create " + path + " from " + temp, publish_errno);
  }

  // fsyncs `dirs`; on failure they go back to the dirty set so a later Sync()
  // retries them (with their ancestors). Taking them out before the fsync (not
  // after) is what keeps a concurrent write to the same directory from being
  // forgotten: a rename that lands after our fsync re-adds the directory.
  Status SyncDirs(std::set<std::string> dirs) {
    {
      std::lock_guard<std::mutex> lock(dirty_mu_);
      for (const std::string& dir : dirs) dirty_.erase(dir);
    }
    Status first_error;
    std::vector<std::string> failed;
    for (const std::string& dir : dirs) {
      Status status = FsyncDir(dir);
      if (status.ok()) continue;
      if (first_error.ok()) first_error = status;
      failed.push_back(dir);
    }
    if (!failed.empty()) {
      std::lock_guard<std::mutex> lock(dirty_mu_);
      dirty_.insert(failed.begin(), failed.end());
    }
    return first_error;
  }

  // Appends to `keys` the objects below `dir` (whose key is `relative`,
  // empty for the root) that start with `prefix`.
  Result<std::vector<std::string>> ListUnder(std::string_view prefix,
                                             bool leftovers) const {
    // Walk only the subtree that the prefix's complete components name.
    std::string start;
    const size_t slash = prefix.rfind('/');
    if (slash != std::string_view::npos) {
      start = prefix.substr(0, slash);
      // No valid key lies below an invalid directory; never walk outside the
      // root for a prefix like "../".
      if (!ValidateStoreKey(start).ok()) return std::vector<std::string>();
    }
    std::vector<std::string> keys;
    SHOAL_RETURN_IF_ERROR(Walk(start.empty() ? root_ : Path(start), start,
                               prefix, leftovers, &keys));
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  // Appends the keys under `dir` that start with `prefix`, or with
  // `leftovers` the temporary files there instead.
  Status Walk(const std::string& dir, const std::string& relative,
              std::string_view prefix, bool leftovers,
              std::vector<std::string>* keys) const {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      // Gone, or never there: a concurrent delete or a prefix naming no
      // directory. Either way nothing below it is listed.
      if (ec == std::errc::no_such_file_or_directory ||
          ec == std::errc::not_a_directory) {
        return Status::OK();
      }
      return ErrnoStatus("list " + dir, ec.value());
    }
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const std::string key = relative.empty() ? name : relative + "/" + name;
      // Only names that could be written as keys are objects; anything else
      // was put there by someone else and cannot be read through this API.
      if (!ValidateStoreKey(key).ok()) continue;
      std::error_code entry_ec;
      const fs::file_status link_status = it->symlink_status(entry_ec);
      if (entry_ec == std::errc::no_such_file_or_directory) continue;
      if (entry_ec) return ErrnoStatus("stat " + key, entry_ec.value());
      if (fs::is_directory(link_status)) {
        const std::string below = key + "/";
        if (below.starts_with(prefix) || prefix.starts_with(below)) {
          SHOAL_RETURN_IF_ERROR(
              Walk(it->path().string(), key, prefix, leftovers, keys));
        }
        continue;
      }
      if (name.starts_with(kTempPrefix) != leftovers ||
          !key.starts_with(prefix)) {
        continue;
      }
      // Symlinked files are listed (Read follows them); symlinked
      // directories are not walked, so a link cycle cannot trap the walk.
      if (fs::is_regular_file(it->status(entry_ec))) keys->push_back(key);
    }
    if (ec) return ErrnoStatus("list " + dir, ec.value());
    return Status::OK();
  }

  const std::string root_;
  std::mutex dirty_mu_;
  // Directories with renamed, created or removed entries not yet fsynced.
  std::set<std::string> dirty_;
};

Result<std::shared_ptr<Store>> OpenFileStore(std::string_view location,
                                             const StoreOptions& options) {
  if (location.empty() || location.front() != '/') {
    return InvalidArgument(
        "a file:// URL needs an absolute path (file:///abs/path); use a plain "
        "path for a relative directory");
  }
  std::string root = fs::path(location).lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (!options.create) {
      return NotFound("no directory " + root);
    }
    // A root created here is made durable at once, so that the chain that
    // Sync() fsyncs can stop at the root.
    std::vector<std::string> changed;
    SHOAL_RETURN_IF_ERROR(
        MakeDirs("/", std::string_view(root).substr(1), &changed));
    for (const std::string& dir : changed) {
      SHOAL_RETURN_IF_ERROR(FsyncDir(dir));
    }
  }
  return std::shared_ptr<Store>(std::make_shared<FileStore>(std::move(root)));
}

[[maybe_unused]] const bool kRegistered =
    StoreRegistry::Register("file", OpenFileStore);

}  // namespace
}  // namespace shoal
