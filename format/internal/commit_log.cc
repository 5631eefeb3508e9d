#include "format/internal/commit_log.h"

namespace shoal::internal {
namespace {

// Enough for readers racing a writer that commits every few milliseconds;
// a reader that loses this often is told to try again.
constexpr int kReadAttempts = 16;

Result<Head> ReadHeadObject(const Store& store, const std::string& key,
                            uint64_t expected) {
  SHOAL_ASSIGN_OR_RETURN(Buffer bytes, store.Read(key));
  auto head = DecodeHead(bytes.span());
  if (!head.ok()) return head.status().WithContext("'" + key + "'");
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

Result<LatestCommit> ReadLatest(const Store& store, const std::string& where,
                                uint64_t known) {
  for (int attempt = 1;; ++attempt) {
    auto head = LatestHead(store, known);
    if (!head.ok()) return head.status().WithContext(where);
    auto bytes = store.Read(head->meta_key);
    if (!bytes.ok()) {
      if (bytes.status().code() == StatusCode::kNotFound &&
          attempt < kReadAttempts) {
        SHOAL_ASSIGN_OR_RETURN(bool newer, Superseded(store, head->commit));
        if (newer) {
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
  SHOAL_RETURN_IF_ERROR(
      store.WriteIfAbsent(CommitKey(head.commit), AsBytes(payload)));
  // A hint needs no durability of its own (Write, not WriteAtomic): a
  // crash that loses it leaves an older HEAD, from which readers walk on.
  (void)store.Write(kHeadKey, AsBytes(payload));
  return Status::OK();
}

}  // namespace shoal::internal
