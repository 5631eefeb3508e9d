// Copying a dataset between stores (format/copy.h).
#include "format/copy.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/coding.h"
#include "format/chunk.h"
#include "format/internal/commit_log.h"
#include "format/internal/metadata.h"

namespace shoal {
namespace {

// An object to copy and how to check it on the way.
struct Item {
  std::string key;
  // For chunks: the reference the index holds (size and header checksum).
  std::optional<internal::ChunkRef> chunk;
};

// Every block of a chunk against its checksum, and the header against the
// index's record of it.
Status CheckChunk(const Item& item, const Buffer& bytes) {
  SHOAL_ASSIGN_OR_RETURN(auto header,
                         ChunkHeader::Decode(bytes.span(), bytes.size()));
  if (item.chunk->chunk_bytes != 0 && item.chunk->chunk_bytes != bytes.size()) {
    return Corruption("the index says " +
                      std::to_string(item.chunk->chunk_bytes) +
                      " bytes, the object has " + std::to_string(bytes.size()));
  }
  SHOAL_RETURN_IF_ERROR(
      internal::CheckChunkBinding(*item.chunk, header->checksum()));
  for (size_t b = 0; b < header->blocks().size(); ++b) {
    const BlockInfo& block = header->blocks()[b];
    if (Checksum64(bytes.span().subspan(block.stored_offset,
                                        block.stored_size)) != block.checksum) {
      return Corruption("block " + std::to_string(b) + " checksum mismatch");
    }
  }
  return Status::OK();
}

}  // namespace

Result<CopyReport> CopyDataset(const Store& src, Store& dst,
                               const CopyOptions& options) {
  CopyReport report;
  SHOAL_ASSIGN_OR_RETURN(internal::LatestCommit latest,
                         internal::ReadLatest(src, "copy from " + src.url()));
  const internal::Head& head = latest.head;
  const std::string head_bytes = internal::EncodeHead(head);
  report.commit = head.commit;
  // A dataset at the destination: this very commit (a finished copy) is
  // fine, anything else is not overwritten.
  auto there = internal::LatestHead(dst);
  if (!there.ok() && there.status().code() != StatusCode::kNotFound) {
    return there.status().WithContext(dst.url());
  }
  const bool dst_has_head = there.ok();
  if (dst_has_head &&
      (there->commit != head.commit || there->meta_key != head.meta_key)) {
    return AlreadyExists("a dataset is already at " + dst.url() +
                         "; copy to an empty place");
  }
  // The objects of the commit, found from the metadata and the indexes.
  std::vector<Item> items = {{head.meta_key, std::nullopt}};
  for (const internal::TensorMeta& t : latest.meta.tensors) {
    for (const internal::Segment& g : t.segments) {
      if (g.index_key.empty()) continue;
      items.push_back({g.index_key, std::nullopt});
      SHOAL_ASSIGN_OR_RETURN(Buffer index_bytes, src.Read(g.index_key));
      if (t.spec.rank < 0) {
        return Corruption(src.url() + " " + g.index_key +
                          ": a tensor with chunks but no rank");
      }
      auto index = internal::TensorIndex::Decode(
          index_bytes.span(), static_cast<uint8_t>(t.spec.rank));
      if (!index.ok()) {
        return index.status().WithContext(src.url() + " " + g.index_key);
      }
      internal::TensorIndex refs = *std::move(index);
      SHOAL_RETURN_IF_ERROR(refs.UpdateRefs([&](internal::ChunkRef& ref) {
        items.push_back({internal::ChunkKey(t.id, ref.id), ref});
        return Status::OK();
      }));
    }
  }
  report.objects = items.size() + 1;  // and HEAD

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;  // the first error, the counters, progress
  Status first_error;
  CopyProgress progress{0, report.objects, 0};
  auto work = [&] {
    for (size_t i = next++; i < items.size() && !failed; i = next++) {
      const Item& item = items[i];
      Status s = [&]() -> Status {
        // A chunk already there with the size its index records was
        // written whole by an earlier run (stores write objects whole, and
        // chunk names are unique): kept without reading it again.
        if (item.chunk && item.chunk->chunk_bytes != 0) {
          auto there = dst.Size(item.key);
          if (there.ok() && *there == item.chunk->chunk_bytes) {
            std::lock_guard<std::mutex> lock(mu);
            ++report.kept;
            return Status::OK();
          }
        }
        SHOAL_ASSIGN_OR_RETURN(Buffer bytes, src.Read(item.key));
        if (item.chunk) {
          Status check = CheckChunk(item, bytes);
          if (!check.ok()) return check.WithContext(src.url() + " " + item.key);
        }
        // Already there, whole (stores write objects whole): kept.
        auto there = dst.Size(item.key);
        if (there.ok() && *there == bytes.size()) {
          std::lock_guard<std::mutex> lock(mu);
          ++report.kept;
          return Status::OK();
        }
        SHOAL_RETURN_IF_ERROR(dst.Write(item.key, bytes.span()));
        std::lock_guard<std::mutex> lock(mu);
        ++report.copied;
        report.bytes += bytes.size();
        progress.bytes_copied = report.bytes;
        return Status::OK();
      }();
      std::lock_guard<std::mutex> lock(mu);
      if (!s.ok()) {
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
      ++progress.objects_done;
      if (options.progress) options.progress(progress);
    }
  };
  std::vector<std::thread> threads;
  const int n = std::clamp(options.threads, 1, 256);
  for (int t = 1; t < n; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  // Everything durable, then HEAD: the copy opens only once it is whole.
  SHOAL_RETURN_IF_ERROR(dst.Sync());
  if (!dst_has_head) {
    Status s = internal::PublishCommit(dst, head);
    if (s.code() == StatusCode::kAlreadyExists) {
      // An earlier run published this commit and stopped before HEAD.
      SHOAL_ASSIGN_OR_RETURN(Buffer commit_bytes,
                             dst.Read(internal::CommitKey(head.commit)));
      if (commit_bytes.view() != head_bytes) {
        return AlreadyExists("a dataset is already at " + dst.url() +
                             "; copy to an empty place");
      }
      s = dst.WriteAtomic(internal::kHeadKey, AsBytes(head_bytes));
    }
    SHOAL_RETURN_IF_ERROR(s);
    ++report.copied;
    report.bytes += head_bytes.size();
  } else {
    ++report.kept;
  }
  return report;
}

Result<CopyReport> CopyDataset(std::string_view src, std::string_view dst,
                               const CopyOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto from, OpenStore(src, {.create = false}));
  SHOAL_ASSIGN_OR_RETURN(auto to, OpenStore(dst, {.create = true}));
  return CopyDataset(*from, *to, options);
}

}  // namespace shoal
