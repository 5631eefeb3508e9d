#include "format/internal/commit_log.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace shoal::internal {
namespace {

Result<Head> ReadHeadObject(const Store& store, const std::string& key,
                            uint64_t expected) {
  SHOAL_ASSIGN_OR_RETURN(Buffer bytes, store.Read(key));
  auto head = DecodeHead(bytes.span());
  if (!head.ok()) {
    return head.status().WithContext(
        "'" + key + "' (a damaged commit object: verify --repair mends it)");
  }
  if (head->commit != expected) {
    return Corruption("'" + key + "' holds commit " +
                      std::to_string(head->commit));
  }
  return *head;
}

}  // namespace

Result<Head> LatestHead(const Store& store, uint64_t known) {
  std::optional<Head> head;
  auto hint = store.Read(kHeadKey);
  if (hint.ok()) {
    // HEAD is a hint: a damaged one (torn by a store that broke its
    // atomicity, or rotted) sends the reader to the commit objects, which
    // decide, from `known` on.
    auto decoded = DecodeHead(hint->span());
    if (decoded.ok()) head = *decoded;
  } else if (hint.status().code() != StatusCode::kNotFound) {
    return hint.status();
  }
  if (!head || known > head->commit) {
    // No HEAD yet (a creator stopped between commit 0 and HEAD), or one
    // older than what the caller saw.
    const uint64_t from = head ? known : 0;
    auto at = ReadHeadObject(store, CommitKey(from), from);
    if (at.ok()) {
      head = *at;
    } else if (at.status().code() != StatusCode::kNotFound) {
      return at.status();
    } else if (!head) {
      return NotFound("no dataset here (no HEAD object)");
    }
  }
  while (true) {
    const uint64_t next = head->commit + 1;
    auto newer = ReadHeadObject(store, CommitKey(next), next);
    if (!newer.ok()) {
      if (newer.status().code() == StatusCode::kNotFound) return *head;
      return newer.status();
    }
    head = *newer;
  }
}

Result<bool> Superseded(const Store& store, uint64_t commit) {
  return store.Exists(CommitKey(commit + 1));
}

SupersededRetry::SupersededRetry()
    : give_up_(std::chrono::steady_clock::now() + std::chrono::seconds(10)) {}

bool SupersededRetry::Again() {
  if (std::chrono::steady_clock::now() >= give_up_) return false;
  if (++losses_ > 8) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min(losses_ - 8, 50)));
  }
  return true;
}

Result<LatestCommit> ReadLatest(const Store& store, const std::string& where,
                                uint64_t known) {
  SupersededRetry retry;
  while (true) {
    auto head = LatestHead(store, known);
    if (!head.ok()) return head.status().WithContext(where);
    auto bytes = store.Read(head->meta_key);
    if (!bytes.ok()) {
      if (bytes.status().code() == StatusCode::kNotFound) {
        SHOAL_ASSIGN_OR_RETURN(bool newer, Superseded(store, head->commit));
        if (newer && retry.Again()) {
          known = head->commit + 1;
          continue;
        }
      }
      return bytes.status().WithContext(where + ": metadata '" +
                                        head->meta_key + "'");
    }
    auto meta = DecodeDatasetMeta(bytes->span());
    if (!meta.ok()) {
      return meta.status().WithContext(where + ": '" + head->meta_key + "'");
    }
    if (meta->commit != head->commit) {
      return Corruption(where + ": commit " + std::to_string(head->commit) +
                        " names metadata of commit " +
                        std::to_string(meta->commit));
    }
    return LatestCommit{*head, std::move(*meta)};
  }
}

Status PublishCommit(Store& store, const Head& head) {
  const std::string payload = EncodeHead(head);
  const std::string key = CommitKey(head.commit);
  if (Status s = store.WriteIfAbsent(key, AsBytes(payload)); !s.ok()) {
    if (s.code() == StatusCode::kAlreadyExists) return s;
    // A write that failed may still have gone through (a timeout, a lost
    // answer): the commit is in if its object says so.
    auto there = store.Read(key);
    if (!there.ok() || there->view() != payload) return s;
  }
  // A hint needs no durability of its own (Write, not WriteAtomic): a
  // crash that loses it leaves an older HEAD, from which readers walk on.
  (void)store.Write(kHeadKey, AsBytes(payload));
  return Status::OK();
}

Result<std::string> RepairDamagedCommit(Store& store) {
  uint64_t k = 0;
  if (auto hint = store.Read(kHeadKey); hint.ok()) {
    if (auto head = DecodeHead(hint->span()); head.ok()) k = head->commit;
  }
  Buffer damaged;
  for (;; ++k) {
    auto bytes = store.Read(CommitKey(k));
    if (!bytes.ok()) {
      if (bytes.status().code() == StatusCode::kNotFound) return std::string();
      return bytes.status();
    }
    auto head = DecodeHead(bytes->span());
    if (!head.ok() || head->commit != k) {
      damaged = std::move(*bytes);
      break;
    }
  }
  const std::string key = CommitKey(k);
  const std::string n = std::to_string(k);
  // Metadata objects of commit k: the winner's, and those of writers that
  // lost the race for k (orphans).
  SHOAL_ASSIGN_OR_RETURN(auto metas, store.List("meta/" + n + "-"));
  std::vector<std::string> of_k, matching;
  std::string encoded;
  for (const std::string& meta_key : metas) {
    auto bytes = store.Read(meta_key);
    if (!bytes.ok()) return bytes.status();
    auto meta = DecodeDatasetMeta(bytes->span());
    if (!meta.ok() || meta->commit != k) continue;
    of_k.push_back(meta_key);
    const std::string mine = EncodeHead({k, meta_key});
    const ByteSpan have = damaged.span();
    size_t differing = 0;
    for (size_t i = 0; i < std::min(have.size(), mine.size()); ++i) {
      differing += static_cast<char>(have[i]) != mine[i] ? 1 : 0;
    }
    const bool torn = have.size() < mine.size() && differing == 0;
    const bool rotted = have.size() == mine.size() && differing <= 8;
    if (torn || rotted) {
      matching.push_back(meta_key);
      encoded = mine;
    }
  }
  if (of_k.empty()) {
    SHOAL_ASSIGN_OR_RETURN(bool newer, Superseded(store, k));
    if (newer) {
      return FailedPrecondition("'" + key +
                                "' is damaged and no metadata of commit " + n +
                                " exists, but commit " + std::to_string(k + 1) +
                                " does: repair it by hand");
    }
    SHOAL_RETURN_IF_ERROR(store.Delete(key));
    return "removed the damaged '" + key + "': no metadata of commit " + n +
           " exists, so nothing was committed under it";
  }
  if (matching.size() != 1) {
    std::string names;
    for (const std::string& m : of_k) names += (names.empty() ? "" : ", ") + m;
    return FailedPrecondition("'" + key + "' is damaged and " +
                              std::to_string(matching.size()) + " of " + names +
                              " fit it: repair it by hand");
  }
  // Created only if absent, as every commit object: the lock keeps other
  // writers out, and a writer that slipped in anyway makes this fail.
  SHOAL_RETURN_IF_ERROR(store.Delete(key));
  SHOAL_RETURN_IF_ERROR(store.WriteIfAbsent(key, AsBytes(encoded)));
  // The hint, as PublishCommit would have left it.
  if (auto newer = Superseded(store, k); newer.ok() && !*newer) {
    (void)store.Write(kHeadKey, AsBytes(encoded));
  }
  return "rewrote the damaged '" + key + "' from '" + matching[0] +
         "', the metadata of commit " + n + " it names";
}

}  // namespace shoal::internal
