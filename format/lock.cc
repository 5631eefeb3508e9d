// DatasetLock (format/lock.h): the LOCK object, its JSON, and how a dead
// holder is told from a live one.
//
// Taking over a stale lock needs care because the Store interface has no
// compare-and-delete: two writers that both found the same stale lock could
// each delete "it", and the second delete would remove the lock the first
// had just created, leaving two holders. So a taker first claims that one
// lock object by creating "LOCK.takeover-<hex64 of its bytes>" with
// WriteIfAbsent(): one claimant per stale lock object. The claimant re-reads
// LOCK and deletes it only if it is still that object; nothing else deletes
// a dead holder's lock (short of break_lock), so it cannot have been
// replaced in between. Then the claim goes and the claimant competes for
// LOCK with WriteIfAbsent() like any other writer. A taker that dies between
// its claim and its delete leaves its claim: a later taker that finds that
// claimant gone too (same host, as for LOCK) claims the next generation,
// "LOCK.takeover-<hex64>.<n>", and whoever wins it deletes the lock and
// every claim of it. A claim whose taker may be alive (another host) blocks
// takeovers of that one stale lock; break_lock clears it.
//
// Every LOCK object carries a random id, so no two are byte-equal: a claim
// or a Release() names exactly one lock, never a later one that happens to
// read the same.
#include "format/lock.h"

#include <signal.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "base/coding.h"

namespace shoal {
namespace {

using nlohmann::json;

constexpr std::string_view kTakeoverPrefix = "LOCK.takeover-";
// Claims of one stale lock by takers that died, passed over before giving
// up (a bound, not a limit anyone meets: each is a taker killed mid-way).
constexpr int kMaxClaimGenerations = 16;
// A lock shoal writes is a few hundred bytes; a bigger object is not one,
// and is neither read whole nor parsed.
constexpr uint64_t kMaxLockBytes = 64 << 10;
constexpr size_t kMaxCommandBytes = 4096;
// Per field, in messages.
constexpr size_t kMaxShownBytes = 200;
// A round ends when the lock is released, taken over or still held; more
// rounds than this means it keeps changing hands.
constexpr int kMaxAttempts = 8;

// All a LOCK object records: the holder, and what tells its process apart
// from a later one with the same pid.
struct LockRecord {
  LockHolder holder;
  // /proc/sys/kernel/random/boot_id: new at every boot.
  std::string boot_id;
  // The target of /proc/self/ns/pid: pids mean something only within one
  // pid namespace (containers may share a host name, not their pids).
  std::string pid_ns;
  // Field 22 of /proc/<pid>/stat: when the process started, in clock ticks
  // since boot. 0 when unknown.
  uint64_t start_ticks = 0;
  std::string id;
};

// The LOCK object as found: its first kMaxLockBytes bytes and its size.
struct SeenLock {
  std::string bytes;
  uint64_t size = 0;

  bool Is(std::string_view object) const {
    return size == object.size() && bytes == object;
  }
  bool operator==(const SeenLock& other) const = default;
};

// What a LOCK object says: a record, or why it is not one.
struct ParsedLock {
  std::optional<LockRecord> record;
  std::string problem;
};

// One line of at most about kMaxShownBytes printable ASCII bytes.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= kMaxShownBytes) {
      return out + "... (" + std::to_string(s.size()) + " bytes)";
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    }
  }
  return out;
}

// The first line of a small system file, or "" when it cannot be read.
std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

std::string PidNamespace() {
  char target[128];
  const ssize_t n = ::readlink("/proc/self/ns/pid", target, sizeof(target));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(target)) return "";
  return std::string(target, static_cast<size_t>(n));
}

uint64_t ProcessStartTicks(int64_t pid) {
  const std::string stat = ReadLine("/proc/" + std::to_string(pid) + "/stat");
  // Field 2, the command, is in parentheses and may contain anything,
  // spaces and ')' included; field 3 follows the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
  }
  uint64_t ticks = 0;
  const auto [end, ec] =
      std::from_chars(field.data(), field.data() + field.size(), ticks);
  return ec == std::errc() && end == field.data() + field.size() ? ticks : 0;
}

// When this machine booted (seconds since the epoch), or 0 when unknown.
int64_t BootTime() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("btime ")) {
      int64_t seconds = 0;
      const char* begin = line.data() + 6;
      const char* end = line.data() + line.size();
      if (std::from_chars(begin, end, seconds).ec == std::errc()) {
        return seconds;
      }
    }
  }
  return 0;
}

std::string UtcNow() {
  const time_t now = ::time(nullptr);
  struct tm tm;
  char text[32] = {};
  if (::gmtime_r(&now, &tm) == nullptr ||
      std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return "";
  }
  return text;
}

// Seconds since the epoch of an UtcNow() string, or 0 when it is not one.
int64_t ParseUtc(const std::string& text) {
  struct tm tm = {};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return 0;
  return static_cast<int64_t>(::timegm(&tm));
}

std::string RandomId() {
  uint64_t id = 0;
  if (::getentropy(&id, sizeof(id)) != 0) {
    // Unique enough: the pid and the time already tell locks apart, the id
    // only has to separate two locks of one process within one second.
    struct timespec now = {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    id = static_cast<uint64_t>(now.tv_nsec) * 0x9e3779b97f4a7c15ULL ^
         static_cast<uint64_t>(::getpid());
  }
  return Hex64(id);
}

LockRecord ThisProcess(std::string_view command) {
  LockRecord record;
  record.holder.host = HostName();
  record.holder.pid = ::getpid();
  record.holder.started = UtcNow();
  record.holder.command = std::string(command.substr(0, kMaxCommandBytes));
  record.boot_id = ReadLine("/proc/sys/kernel/random/boot_id");
  record.pid_ns = PidNamespace();
  record.start_ticks = ProcessStartTicks(record.holder.pid);
  record.id = RandomId();
  return record;
}

std::string EncodeLock(const LockRecord& record) {
  // Ordered and indented: people read LOCK objects with cat.
  nlohmann::ordered_json j;
  j["host"] = record.holder.host;
  j["pid"] = record.holder.pid;
  j["started"] = record.holder.started;
  j["command"] = record.holder.command;
  if (!record.boot_id.empty()) j["boot_id"] = record.boot_id;
  if (!record.pid_ns.empty()) j["pid_ns"] = record.pid_ns;
  if (record.start_ticks != 0) j["start_ticks"] = record.start_ticks;
  j["id"] = record.id;
  // A command line need not be UTF-8; JSON must be.
  return j.dump(2, ' ', false,
                nlohmann::ordered_json::error_handler_t::replace) +
         "\n";
}

ParsedLock ParseLock(const SeenLock& seen) {
  ParsedLock parsed;
  if (seen.size > kMaxLockBytes) {
    parsed.problem = std::to_string(seen.size) + " bytes, more than any lock";
    return parsed;
  }
  const json j = json::parse(seen.bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    parsed.problem = "not JSON";
    return parsed;
  }
  if (!j.is_object()) {
    parsed.problem = "not a JSON object";
    return parsed;
  }
  LockRecord record;
  // Fills `out` from the string field `name`; absent leaves it empty.
  auto get_string = [&](const char* name, bool required, std::string* out) {
    const auto it = j.find(name);
    if (it == j.end()) {
      if (required) parsed.problem = std::string("no \"") + name + "\"";
      return !required;
    }
    if (!it->is_string()) {
      parsed.problem = std::string("\"") + name + "\" is not a string";
      return false;
    }
    *out = it->get<std::string>();
    return true;
  };
  if (!get_string("host", true, &record.holder.host) ||
      !get_string("started", false, &record.holder.started) ||
      !get_string("command", false, &record.holder.command) ||
      !get_string("boot_id", false, &record.boot_id) ||
      !get_string("pid_ns", false, &record.pid_ns) ||
      !get_string("id", false, &record.id)) {
    return parsed;
  }
  // Positive and a pid_t: kill() must not see 0 or -1 (the process group,
  // or every process) nor a value cut to 32 bits.
  const auto pid = j.find("pid");
  if (pid == j.end() || !pid->is_number_unsigned() ||
      pid->get<uint64_t>() < 1 || pid->get<uint64_t>() > INT_MAX) {
    parsed.problem = "no \"pid\" that is a process id";
    return parsed;
  }
  record.holder.pid = static_cast<int64_t>(pid->get<uint64_t>());
  if (const auto ticks = j.find("start_ticks"); ticks != j.end()) {
    if (!ticks->is_number_unsigned()) {
      parsed.problem = "\"start_ticks\" is not an unsigned integer";
      return parsed;
    }
    record.start_ticks = ticks->get<uint64_t>();
  }
  parsed.record = std::move(record);
  return parsed;
}

// Whether two fields that either side may not know agree.
bool SameIfKnown(const std::string& a, const std::string& b) {
  return a.empty() || b.empty() || a == b;
}

// Whether `lock` was taken on this machine, as far as it says, so that its
// pid means a process here.
bool SameMachine(const LockRecord& lock, const LockRecord& me) {
  return !me.holder.host.empty() && lock.holder.host == me.holder.host &&
         SameIfKnown(lock.boot_id, me.boot_id) &&
         SameIfKnown(lock.pid_ns, me.pid_ns);
}

bool SameProcess(const LockRecord& lock, const LockRecord& me) {
  return SameMachine(lock, me) && lock.holder.pid == me.holder.pid &&
         (lock.start_ticks == 0 || me.start_ticks == 0 ||
          lock.start_ticks == me.start_ticks);
}

// Why the holder of `lock` is certainly not running, or "" when it may be.
std::string GoneReason(const LockRecord& lock, const LockRecord& me) {
  if (me.holder.host.empty() || lock.holder.host != me.holder.host) return "";
  if (!lock.boot_id.empty() && !me.boot_id.empty() &&
      lock.boot_id != me.boot_id) {
    // Another boot: a previous one of this machine if the lock is older
    // than this boot; otherwise another machine that has the same name.
    const int64_t started = ParseUtc(lock.holder.started);
    const int64_t boot = BootTime();
    if (started != 0 && boot != 0 && started < boot) {
      return "this machine has restarted since";
    }
    return "";
  }
  if (!SameMachine(lock, me)) return "";
  const std::string pid = "pid " + std::to_string(lock.holder.pid);
  if (lock.holder.pid == me.holder.pid) {
    return SameProcess(lock, me) ? "" : pid + " is now this process";
  }
  if (::kill(static_cast<pid_t>(lock.holder.pid), 0) != 0 && errno == ESRCH) {
    return "the process is gone";
  }
  if (lock.start_ticks != 0 && me.start_ticks != 0) {
    const uint64_t ticks = ProcessStartTicks(lock.holder.pid);
    if (ticks != 0 && ticks != lock.start_ticks) {
      return pid + " now belongs to a process that started later";
    }
  }
  return "";
}

std::string Describe(const ParsedLock& lock) {
  if (lock.record) return lock.record->holder.ToString();
  return "an unknown writer (unreadable LOCK object: " + lock.problem + ")";
}

Status HeldError(const Store& store, const ParsedLock& lock,
                 const LockRecord& me) {
  const std::string dataset = "dataset " + store.url();
  if (!lock.record) {
    return FailedPrecondition(
        dataset + " has a LOCK object that is not a valid lock (" +
        lock.problem +
        "), so it is held by an unknown writer; pass --break-lock if you are "
        "sure no writer is running");
  }
  const LockHolder& holder = lock.record->holder;
  if (SameProcess(*lock.record, me)) {
    return FailedPrecondition(
        dataset + " is already being written by this process (" +
        holder.ToString() + "); a dataset has one writer at a time");
  }
  const char* why = SameMachine(*lock.record, me)
                        ? "it is still running"
                        : "it runs on another machine, so whether it still "
                          "runs cannot be told from here";
  return FailedPrecondition(
      dataset + " is locked by another writer, " + holder.ToString() + " (" +
      why +
      "). Wait for it to finish, or pass --break-lock if you are sure it is "
      "not running");
}

// The LOCK object, or nullopt when there is none (or it changed under the
// read: the caller looks again either way).
Result<std::optional<SeenLock>> ReadLock(const Store& store,
                                         const std::string& key) {
  const Result<uint64_t> size = store.Size(key);
  if (!size.ok()) {
    if (size.status().code() == StatusCode::kNotFound) {
      return std::optional<SeenLock>();
    }
    return size.status();
  }
  const Result<Buffer> bytes =
      store.ReadRange(key, 0, std::min(*size, kMaxLockBytes));
  if (!bytes.ok()) {
    const StatusCode code = bytes.status().code();
    if (code == StatusCode::kNotFound || code == StatusCode::kOutOfRange) {
      return std::optional<SeenLock>();
    }
    return bytes.status();
  }
  return std::optional<SeenLock>(SeenLock{std::string(bytes->view()), *size});
}

Status TakeoverInProgress(const Store& store, const std::string& claim,
                          const ParsedLock& lock) {
  std::string taker = "another writer";
  if (const Result<Buffer> object = store.Read(claim); object.ok()) {
    const ParsedLock parsed =
        ParseLock(SeenLock{std::string(object->view()), object->size()});
    if (parsed.record) taker = parsed.record->holder.ToString();
  }
  return FailedPrecondition(
      "dataset " + store.url() + " is locked: the stale lock of " +
      Describe(lock) + " is being taken over by " + taker + " (object " +
      claim + "). If that writer is not running either, pass --break-lock");
}

// Deletes the LOCK object `seen` through a takeover claim (see the file
// comment). True when it deleted it, false when LOCK had changed already.
// `force` (break_lock) also clears a claim someone else left.
Result<bool> RemoveLock(Store& store, const std::string& key,
                        const SeenLock& seen, const ParsedLock& parsed,
                        const std::string& claimant, const LockRecord& me,
                        bool force) {
  const std::string base = std::string(kTakeoverPrefix) +
                           Hex64(Checksum64(AsBytes(seen.bytes)) ^ seen.size);
  std::string claim;
  Status claimed;
  int generation = 0;
  for (;; ++generation) {
    claim = generation == 0 ? base : base + "." + std::to_string(generation);
    claimed = store.WriteIfAbsent(claim, AsBytes(claimant));
    if (claimed.code() == StatusCode::kAlreadyExists && force) {
      const Status dropped = store.Delete(claim);
      if (!dropped.ok() && dropped.code() != StatusCode::kNotFound) {
        return dropped;
      }
      claimed = store.WriteIfAbsent(claim, AsBytes(claimant));
    }
    if (claimed.code() != StatusCode::kAlreadyExists) break;
    // A claimant that is certainly gone (killed while taking over) is
    // passed over by claiming the next generation: takers that all find
    // it gone race for that one, so still one wins, and nobody deletes a
    // claim that may be live.
    const Result<Buffer> other = store.Read(claim);
    const ParsedLock taker =
        other.ok()
            ? ParseLock(SeenLock{std::string(other->view()), other->size()})
            : ParsedLock{};
    if (generation + 1 >= kMaxClaimGenerations || !taker.record ||
        GoneReason(*taker.record, me).empty()) {
      return TakeoverInProgress(store, claim, parsed);
    }
  }
  SHOAL_RETURN_IF_ERROR(claimed);

  bool removed = false;
  Result<std::optional<SeenLock>> now = ReadLock(store, key);
  Status status = now.status();
  if (status.ok() && *now && **now == seen) {
    status = store.Delete(key);
    removed = status.ok();
    if (status.code() == StatusCode::kNotFound) status = Status::OK();
  }
  // A claim that outlives this call blocks nothing: the lock it names is
  // gone or no longer stale-looking to anyone who re-reads it. The dead
  // takers' claims passed over go too (the lock they name is gone).
  for (int g = generation; g >= 0; --g) {
    static_cast<void>(
        store.Delete(g == 0 ? base : base + "." + std::to_string(g)));
  }
  SHOAL_RETURN_IF_ERROR(status);
  return removed;
}

}  // namespace

std::string LockHolder::ToString() const {
  std::string out = "pid " + std::to_string(pid) + " on host " +
                    (host.empty() ? std::string("(unnamed)") : Printable(host));
  if (!started.empty()) out += ", started " + Printable(started);
  if (!command.empty()) out += ", running '" + Printable(command) + "'";
  return out;
}

DatasetLock::DatasetLock(std::shared_ptr<Store> store, std::string key,
                         LockHolder holder, std::string object)
    : store_(std::move(store)),
      key_(std::move(key)),
      holder_(std::move(holder)),
      object_(std::move(object)) {}

std::string WriterLockKey(uint32_t rank, uint32_t world) {
  if (world <= 1) return std::string(kDatasetLockKey);
  return std::string(kDatasetLockKey) + ".w" + std::to_string(rank);
}

DatasetLock::~DatasetLock() { static_cast<void>(Release()); }

Result<std::unique_ptr<DatasetLock>> DatasetLock::Acquire(
    std::shared_ptr<Store> store, const LockOptions& options,
    std::string* message) {
  if (message != nullptr) message->clear();
  if (store == nullptr) return InvalidArgument("DatasetLock: no store");
  const std::string& key = options.key;
  if (!key.starts_with(kDatasetLockKey)) {
    return InvalidArgument("DatasetLock: '" + key + "' is not a lock key");
  }
  const LockRecord me = ThisProcess(options.command);
  const std::string object = EncodeLock(me);
  std::string taken_over;  // For `message`, once the lock is ours.
  // break_lock breaks the lock it finds, never a racer's newer one.
  bool may_break = options.break_lock;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const Status created = store->WriteIfAbsent(key, AsBytes(object));
    if (created.ok()) {
      if (message != nullptr) *message = std::move(taken_over);
      return std::unique_ptr<DatasetLock>(
          new DatasetLock(std::move(store), key, me.holder, object));
    }
    if (created.code() != StatusCode::kAlreadyExists) {
      return created.WithContext("cannot lock dataset " + store->url());
    }
    SHOAL_ASSIGN_OR_RETURN(std::optional<SeenLock> seen, ReadLock(*store, key));
    if (!seen) continue;  // Released meanwhile.
    const ParsedLock parsed = ParseLock(*seen);
    const bool force = std::exchange(may_break, false);
    const std::string gone =
        force || !parsed.record ? "" : GoneReason(*parsed.record, me);
    if (!force && gone.empty()) return HeldError(*store, parsed, me);
    SHOAL_ASSIGN_OR_RETURN(bool removed, RemoveLock(*store, key, *seen, parsed,
                                                    object, me, force));
    if (removed) {
      taken_over = force ? "broke the write lock of " + Describe(parsed) +
                               " (--break-lock)"
                         : "took over the stale write lock of " +
                               Describe(parsed) + ": " + gone;
    }
  }
  return FailedPrecondition("cannot lock dataset " + store->url() +
                            ": its LOCK object kept changing hands (" +
                            std::to_string(kMaxAttempts) +
                            " tries); try again");
}

Status DatasetLock::Release() {
  if (released_) return Status::OK();
  SHOAL_ASSIGN_OR_RETURN(std::optional<SeenLock> seen, ReadLock(*store_, key_));
  const std::string lost = "the write lock of dataset " + store_->url() +
                           " was broken while " + holder_.ToString() +
                           " held it; the dataset may have had two writers";
  if (!seen || !seen->Is(object_)) {
    released_ = true;
    if (!seen) return FailedPrecondition(lost);
    return FailedPrecondition(lost + " (now " + Describe(ParseLock(*seen)) +
                              ")");
  }
  // Between the read and the delete only a break_lock could replace the
  // object: nothing else removes a live writer's lock.
  const Status deleted = store_->Delete(key_);
  if (deleted.code() == StatusCode::kNotFound) {
    released_ = true;
    return FailedPrecondition(lost);
  }
  SHOAL_RETURN_IF_ERROR(deleted);
  released_ = true;
  return Status::OK();
}

Result<std::optional<LockHolder>> ReadDatasetLock(const Store& store,
                                                  std::string_view key) {
  SHOAL_ASSIGN_OR_RETURN(std::optional<SeenLock> seen,
                         ReadLock(store, std::string(key)));
  if (!seen) return std::optional<LockHolder>();
  ParsedLock parsed = ParseLock(*seen);
  if (!parsed.record) {
    return Corruption("the LOCK object of dataset " + store.url() +
                      " is not a valid lock: " + parsed.problem);
  }
  return std::optional<LockHolder>(std::move(parsed.record->holder));
}

}  // namespace shoal
