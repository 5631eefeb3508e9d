// Copying a dataset between stores: what, how checked, how published
// (format/copy.h).
#include "format/copy.h"

#include <optional>
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

struct CopyPlan::State {
  internal::Head head;
  std::string head_bytes;
  bool dst_has_commit = false;
  std::vector<Item> items;
};

Result<CopyPlan> CopyPlan::Make(const Store& src, const Store& dst) {
  auto state = std::make_shared<State>();
  SHOAL_ASSIGN_OR_RETURN(internal::LatestCommit latest,
                         internal::ReadLatest(src, "copy from " + src.url()));
  state->head = latest.head;
  state->head_bytes = internal::EncodeHead(latest.head);
  // A dataset at the destination: this very commit (a finished copy) is
  // fine, anything else is not overwritten.
  auto there = internal::LatestHead(dst);
  if (!there.ok() && there.status().code() != StatusCode::kNotFound) {
    return there.status().WithContext(dst.url());
  }
  state->dst_has_commit = there.ok();
  if (there.ok() && (there->commit != latest.head.commit ||
                     there->meta_key != latest.head.meta_key)) {
    return AlreadyExists("a dataset is already at " + dst.url() +
                         "; copy to an empty place");
  }
  // The objects of the commit, found from the metadata and the indexes.
  std::vector<Item>& items = state->items;
  items.push_back({latest.head.meta_key, std::nullopt});
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
  CopyPlan plan;
  plan.state_ = std::move(state);
  return plan;
}

uint64_t CopyPlan::commit() const { return state_->head.commit; }
size_t CopyPlan::size() const { return state_->items.size(); }
const std::string& CopyPlan::key(size_t i) const {
  return state_->items[i].key;
}
uint64_t CopyPlan::known_bytes(size_t i) const {
  const Item& item = state_->items[i];
  return item.chunk ? item.chunk->chunk_bytes : 0;
}

Status CopyPlan::Check(size_t i, const Buffer& bytes) const {
  const Item& item = state_->items[i];
  Status s;
  if (item.chunk) {
    s = CheckChunk(item, bytes);
  } else if (i == 0) {
    s = internal::DecodeDatasetMeta(bytes.span()).status();
  } else {
    s = internal::DecodeObject(bytes.span(), internal::kIndexMagic,
                               "chunk index", internal::kIndexVersion)
            .status();
  }
  return s.WithContext(item.key);
}

Status CopyPlan::Finish(Store& dst, CopyReport* report) const {
  // Everything durable, then the commit: the copy opens only once whole.
  SHOAL_RETURN_IF_ERROR(dst.Sync());
  if (state_->dst_has_commit) {
    ++report->kept;
    return Status::OK();
  }
  Status s = internal::PublishCommit(dst, state_->head);
  if (s.code() == StatusCode::kAlreadyExists) {
    // An earlier run published this commit and stopped before HEAD.
    SHOAL_ASSIGN_OR_RETURN(Buffer commit_bytes,
                           dst.Read(internal::CommitKey(state_->head.commit)));
    if (commit_bytes.view() != state_->head_bytes) {
      return AlreadyExists("a dataset is already at " + dst.url() +
                           "; copy to an empty place");
    }
    s = dst.WriteAtomic(internal::kHeadKey, AsBytes(state_->head_bytes));
  }
  SHOAL_RETURN_IF_ERROR(s);
  ++report->copied;
  report->bytes += state_->head_bytes.size();
  return Status::OK();
}

}  // namespace shoal
