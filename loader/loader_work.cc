// The work of one batch: the feeder lays it out (Fill), the fetch stage
// loads the chunks it needs that no other batch loads (Fetch), or under
// per_sample_reads its samples' stored bytes; the decode stage writes
// every sample into its slot of the batch buffer (Decode).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/random.h"
#include "loader/internal/loader_impl.h"

namespace shoal {
namespace {

// Capacity for a batch needing `bytes`: ragged batches (images of varying
// size) differ from one to the next, so a buffer grows with 1/8 headroom
// rather than being replaced whenever a batch is a little larger.
uint64_t BatchCapacity(uint64_t bytes) { return bytes + bytes / 8; }

}  // namespace

// Lays out the next batch of the plan in `item` (a recycled one) and waits
// for its memory. False after the last epoch.
Result<bool> Loader::Impl::Fill(LoaderBatchWork& item) {
  while (feed.next.batch >= feed.plan->epoch_batches) {
    if (feed.next.epoch + 1 >= end_epoch) return false;
    PlanEpoch(feed.next.epoch + 1, 0);
  }
  const uint64_t j = feed.cursor.batch();
  item.plan = feed.plan;
  item.epoch = feed.next.epoch;
  item.index = feed.next.batch;
  feed.cursor.Next(feed.samples);
  const std::vector<uint64_t>& samples = feed.samples;
  item.indices.resize(samples.size());
  item.clips.resize(samples.size());
  for (size_t k = 0; k < samples.size(); ++k) {
    item.indices[k] = samples[k] / clips_per_video;
    item.clips[k] = static_cast<uint32_t>(samples[k] % clips_per_video);
  }
  ShareClips(item);
  // A run stopped between this item's admission and its fetch (or decode)
  // left its reservation (or samples) behind.
  item.Unreserve();
  item.ReleaseStored();
  uint64_t grow = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const LoadedTensor& lt = tensors[t];
    TensorBatch& out = item.tensors[t];
    out.shapes_.resize(samples.size());
    out.offsets_.resize(samples.size() + 1);
    out.offsets_[0] = 0;
    out.ragged_ = false;
    for (size_t k = 0; k < samples.size(); ++k) {
      out.shapes_[k] = lt.OutputShape(item.indices[k]);
      if (k > 0 && out.shapes_[k] != out.shapes_[0]) out.ragged_ = true;
      out.offsets_[k + 1] =
          out.offsets_[k] + out.shapes_[k].num_elements() * lt.item_size;
    }
    out.bytes_ = out.offsets_.back();
    out.want_capacity_ = 0;
    if (out.data_.size() < out.bytes_) {
      // A free buffer that holds the batch, else a new one: admitted with
      // the batch, made by the fetch stage.
      buffers->Put(t, std::move(out.data_));
      out.data_ = MutableBuffer();
      const uint64_t want =
          out.ragged_ ? BatchCapacity(out.bytes_) : out.bytes_;
      while (true) {
        if (auto free = buffers->Take(t, out.bytes_, false)) {
          out.data_ = std::move(*free);
          break;
        }
        // A new buffer while the budget has room for it, or when none will
        // come back. Otherwise wait for one: asking the budget for room it
        // does not have would hold this batch until the pipeline drains (a
        // batch is admitted past the budget only when nothing is in
        // flight), idling every thread. The wait is bounded: a buffer kept
        // by a failed batch never comes back.
        if (budget->HasRoom(want) || buffers->Outstanding(t) == 0 ||
            !buffers->WaitForReturn(std::chrono::milliseconds(50))) {
          if (auto free = buffers->Take(t, out.bytes_, true)) {
            out.data_ = std::move(*free);
            break;
          }
          out.want_capacity_ = want;
          grow += want;
          break;
        }
      }
    }

    auto& reads = item.reads[t];
    reads.clear();
    if (per_sample_reads || lt.regions) continue;
    auto& extents = feed.scratch;
    extents.clear();
    for (uint64_t s : item.indices) extents.push_back(lt.ExtentOf(s));
    std::sort(extents.begin(), extents.end());
    extents.erase(std::unique(extents.begin(), extents.end()), extents.end());
    auto& resident = feed.resident[t];
    for (size_t e : extents) {
      auto it = resident.find(e);
      std::shared_ptr<ExtentSlot> slot;
      if (it != resident.end()) {
        slot = it->second;
      } else {
        slot = std::make_shared<ExtentSlot>();
        slot->extent = e;
        slot->budget = budget;
        slot->charged = static_cast<uint64_t>(
            static_cast<double>(lt.extents[e].stored_bytes) * lt.expansion);
        // Admitted with this batch, held until the extent's last reader.
        feed.pipeline->AdmitWithItem(slot->charged);
        if (feed.last_use[t][e] != j) resident.emplace(e, slot);
      }
      if (feed.last_use[t][e] == j && it != resident.end()) resident.erase(it);
      reads.push_back(std::move(slot));
    }
  }
  // Batch buffers are charged for their lifetime (they stay with the item
  // between batches): a batch is admitted for the growth it needs.
  if (grow > 0) {
    feed.pipeline->AdmitWithItem(grow);
    item.reserved = grow;
  }
  ++feed.next.batch;
  return true;
}

// Makes `out`'s buffer the capacity the batch laid out by Fill wants,
// charged to the budget (and counted in batch_budget) while it exists. Its
// pages are faulted in here, in the fetch stage, rather than one by one in
// the decoders' first pass over a new buffer: big buffers come populated
// (with huge pages) from MutableBuffer, smaller ones get a store per page
// (not memset(0): compilers turn allocation + memset(0) into calloc, which
// faults nothing in).
Status Loader::Impl::GrowBatchBuffer(LoaderBatchWork& item, size_t t) {
  TensorBatch& out = item.tensors[t];
  const std::string& where = tensors[t].where;
  const uint64_t share = std::min(item.reserved, out.want_capacity_);
  item.reserved -= share;
  // A batch released while this one waited for room may have left a buffer
  // that will do: the reservation goes back.
  if (auto free = buffers->Take(t, out.bytes_, true)) {
    budget->Charge(-static_cast<int64_t>(share));
    out.data_ = std::move(*free);
    out.want_capacity_ = 0;
    return Status::OK();
  }
  auto buffer = MutableBuffer::Allocate(out.want_capacity_, batch_budget);
  if (!buffer.ok()) {
    budget->Charge(-static_cast<int64_t>(share));
    return ResourceExhausted(where + ": no memory for a batch of " +
                             std::to_string(out.want_capacity_) + " bytes");
  }
  // The reservation becomes the buffer's charge to the budget, handed back
  // when the buffer is freed. (Giving it back here and charging the buffer
  // anew would let the feeder admit another batch into the gap.)
  std::byte* data = buffer->data();
  const size_t size = buffer->size();
  buffers->Made(t);
  std::shared_ptr<void> owner(
      new MutableBuffer(std::move(*buffer)),
      [budget = budget, size, share, t,
       pool = std::weak_ptr<BatchBufferPool>(buffers)](void* p) {
        delete static_cast<MutableBuffer*>(p);
        budget->Charge(-static_cast<int64_t>(share));
        if (auto live = pool.lock()) live->Freed(t);
      });
  MutableBuffer wrapped = MutableBuffer::Wrap(std::move(owner), data, size);
  if (size < kMappedBufferBytes) {  // mapped ones come populated
    volatile std::byte* v = data;
    for (uint64_t i = 0; i < size; i += 4096) v[i] = std::byte{0};
  }
  out.data_ = std::move(wrapped);
  out.want_capacity_ = 0;
  return Status::OK();
}

// Loads the chunks this batch reads that no other fetch has claimed, all
// at once, then waits for those that other fetches are loading: the waits
// for the store happen here, on the fetch workers, never in a decoder.
Status Loader::Impl::Fetch(LoaderBatchWork& item) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    TensorBatch& out = item.tensors[t];
    if (out.want_capacity_ > 0) {
      SHOAL_RETURN_IF_ERROR(GrowBatchBuffer(item, t));
    }
  }
  item.Unreserve();
  if (per_sample_reads) return ReadSamples(item);
  for (size_t t = 0; t < tensors.size(); ++t) Load(item, t);
  for (const auto& reads : item.reads) {
    for (const auto& slot : reads) slot->Wait();
  }
  return Status::OK();
}

void Loader::Impl::Load(LoaderBatchWork& item, size_t t) {
  item.claimed.clear();
  item.extents.clear();
  for (const auto& slot : item.reads[t]) {
    if (!slot->Claim()) continue;
    item.claimed.push_back(slot.get());
    item.extents.push_back(slot->extent);
  }
  if (item.claimed.empty()) return;
  std::vector<Result<ExtentData>> data = tensors[t].tensor->ReadExtents(
      item.extents, [this](size_t bytes) { return pool->Allocate(bytes); });
  for (size_t k = 0; k < item.claimed.size(); ++k) {
    ExtentSlot& slot = *item.claimed[k];
    if (data[k].ok()) {
      slot.data = std::move(*data[k]);
      chunks_read.fetch_add(1, std::memory_order_relaxed);
      bytes_read.fetch_add(tensors[t].extents[slot.extent].stored_bytes,
                           std::memory_order_relaxed);
      const uint64_t actual = slot.data.memory_bytes();
      slot.budget->Charge(static_cast<int64_t>(actual) -
                          static_cast<int64_t>(slot.charged));
      slot.charged = actual;
    } else {
      slot.status = data[k].status();
    }
    slot.Publish();
  }
}

// Samples a shuffle spreads over chunks that do not fit the budget are
// read one by one, but a batch's are read together: per chunk the runs of
// neighbouring samples' blocks, every read in flight at once.
Status Loader::Impl::ReadSamples(LoaderBatchWork& item) {
  // Reading the bytes between two samples costs less than another request
  // while they are within a block (128 KiB by default) of each other; the
  // request's round trip is paid once per batch either way.
  constexpr uint64_t kCoalesceGap = 128 << 10;
  for (size_t t = 0; t < tensors.size(); ++t) {
    if (tensors[t].regions) continue;  // read by region when decoded
    StoredSamples& stored = item.stored[t];
    tensors[t].tensor->ReadStoredSamples(item.indices, kCoalesceGap, &stored);
    sample_reads.fetch_add(stored.reads, std::memory_order_relaxed);
    bytes_read.fetch_add(stored.bytes_read, std::memory_order_relaxed);
    budget->Charge(static_cast<int64_t>(stored.bytes_read));
    item.stored_charged += stored.bytes_read;
  }
  return Status::OK();
}

Status Loader::Impl::DecodeSample(LoaderBatchWork& item, size_t k, size_t t,
                                  ImageTransformer& transformer, bool wait) {
  const LoadedTensor& lt = tensors[t];
  TensorBatch& out = item.tensors[t];
  const uint64_t sample = item.indices[k];
  const MutableByteSpan dest(out.data_.data() + out.offsets_[k],
                             out.offsets_[k + 1] - out.offsets_[k]);
  ByteSpan bytes;
  Shape shape;
  bool encoded = false;
  Buffer owned;  // kFull: the sample read on its own; a video's file
  const std::string* chunk_key = nullptr;  // for messages; built on error
  const uint64_t seed =
      SampleSeed(options.seed, item.epoch, item.clips[k] * n + sample);
  if (lt.regions) {
    return CropPixels(lt, sample, lt.StoredShape(sample), {}, seed, transformer,
                      dest);
  }
  if (per_sample_reads) {
    SHOAL_ASSIGN_OR_RETURN(const bool tiled, lt.tensor->IsTiled(sample));
    // A tiled sample has no single stored form: read it whole, straight
    // into the batch unless a transform wants it first.
    if (tiled && !lt.transform) return lt.tensor->ReadInto(sample, dest);
    if (tiled) {
      SHOAL_ASSIGN_OR_RETURN(Sample whole, lt.tensor->Read(sample));
      owned = std::move(whole.data);
      bytes = owned.span();
      shape = whole.shape;
    } else {
      Result<Buffer>& stored = item.stored[t].samples[k];
      if (!stored.ok()) return stored.status();
      owned = *stored;
      bytes = owned.span();
      shape = lt.StoredShape(sample);
      encoded = !lt.tensor->spec().sample_compression.empty();
    }
  } else {
    ExtentSlot* const held = HeldSlot(item, t, sample);
    if (held == nullptr) {
      return Internal("batch does not hold the chunk of sample " +
                      std::to_string(sample));
    }
    ExtentSlot& slot = *held;
    const std::string& key = lt.extents[slot.extent].chunk_key;
    if (!slot.status.ok()) {
      return slot.status.WithContext("sample " + std::to_string(sample));
    }
    const uint64_t j = sample - slot.data.first_sample();
    if (lt.clip) owned = slot.data.slice(j);  // the reader keeps it
    bytes = slot.data.bytes(j);
    shape = slot.data.shape(j);
    encoded = slot.data.encoded();
    if (!key.empty()) chunk_key = &key;
  }
  Status s;
  if (lt.clip) {
    std::string name = lt.where;
    if (chunk_key != nullptr) name += ": chunk '" + *chunk_key + "'";
    name += ": sample " + std::to_string(sample);
    return DecodeClip(item, k, t, std::move(owned), std::move(name), dest,
                      wait);
  }
  if (lt.transform) {
    if (!encoded) {
      return CropPixels(lt, sample, shape, bytes, seed, transformer, dest);
    } else {
      auto codec = lt.tensor->ImageCodecFor(bytes);
      transformer.ChargeTo(budget);
      s = codec.ok()
              ? transformer.Apply(**codec, bytes, *lt.transform, seed, dest)
              : codec.status();
    }
  } else if (encoded) {
    s = lt.tensor->DecodeInto(bytes, shape, dest);
  } else if (bytes.size() != dest.size()) {
    s = Corruption("sample has " + std::to_string(bytes.size()) +
                   " bytes, its shape " + shape.ToString() + " needs " +
                   std::to_string(dest.size()));
  } else if (!dest.empty()) {
    std::memcpy(dest.data(), bytes.data(), dest.size());
  }
  if (s.ok()) return s;
  std::string context = lt.where;
  if (chunk_key != nullptr) context += ": chunk '" + *chunk_key + "'";
  return s.WithContext(context + ": sample " + std::to_string(sample));
}

// A transform of an image stored as pixels: the crop is cut from `held`,
// the sample's bytes in memory, or else read alone (only the tiles and
// blocks under it, in parallel on the loader's threads).
Status Loader::Impl::CropPixels(const LoadedTensor& lt, uint64_t sample,
                                const Shape& shape, ByteSpan held,
                                uint64_t seed, ImageTransformer& transformer,
                                MutableByteSpan dest) {
  auto where = [&] { return lt.where + ": sample " + std::to_string(sample); };
  if ((shape.rank() != 2 && shape.rank() != 3) || shape[0] > UINT32_MAX ||
      shape[1] > UINT32_MAX || shape[0] == 0 || shape[1] == 0) {
    return InvalidArgument(where() + ": an image transform needs [H, W] or " +
                           "[H, W, C] pixels, not " + shape.ToString());
  }
  ImageInfo image;
  image.height = static_cast<uint32_t>(shape[0]);
  image.width = static_cast<uint32_t>(shape[1]);
  // ApplyToPixels refuses more than 4 channels.
  image.channels = static_cast<uint8_t>(
      shape.rank() == 2 ? 1 : std::min<uint64_t>(shape[2], 255));
  image.dtype = lt.tensor->dtype();
  // The reader captures one reference, which std::function keeps without
  // allocating (a capture of each variable would allocate per sample).
  const struct {
    const LoadedTensor& lt;
    uint64_t sample;
    const Shape& shape;
    ByteSpan held;
    const ImageInfo& image;
  } src{lt, sample, shape, held, image};
  const auto read = [&src](const ImageRegion& box,
                           MutableByteSpan out) -> Status {
    const ImageInfo& im = src.image;
    if (src.lt.regions) {
      const uint64_t lo[3] = {box.y, box.x, 0};
      const uint64_t hi[3] = {uint64_t{box.y} + box.height,
                              uint64_t{box.x} + box.width, im.channels};
      const size_t rank = src.shape.rank();
      return src.lt.tensor->ReadRegionInto(src.sample, std::span(lo, rank),
                                           std::span(hi, rank), out);
    }
    const size_t item = DTypeSize(im.dtype);
    if (src.held.size() != src.shape.num_elements() * item) {
      return Corruption("sample has " + std::to_string(src.held.size()) +
                        " bytes, its shape " + src.shape.ToString() +
                        " needs " +
                        std::to_string(src.shape.num_elements() * item));
    }
    const size_t pixel = size_t{im.channels} * item;
    const size_t row = size_t{box.width} * pixel;
    for (uint32_t y = 0; y < box.height; ++y) {
      std::memcpy(
          out.data() + y * row,
          src.held.data() + (size_t{box.y + y} * im.width + box.x) * pixel,
          row);
    }
    return Status::OK();
  };
  transformer.ChargeTo(budget);
  Status s = transformer.ApplyToPixels(image, read, *lt.transform, seed, dest);
  if (s.ok()) return s;
  // Errors of the region read name the sample already.
  return s.message().find(lt.where) != std::string::npos
             ? s
             : s.WithContext(where());
}

// The extent of tensor t holding `sample` among those the batch reads
// (loaded: the batch's fetch waited for them), or null when the batch does
// not read it.
ExtentSlot* Loader::Impl::HeldSlot(LoaderBatchWork& item, size_t t,
                                   uint64_t sample) {
  const size_t e = tensors[t].ExtentOf(sample);
  const auto& reads = item.reads[t];
  auto it = std::lower_bound(reads.begin(), reads.end(), e,
                             [](const std::shared_ptr<ExtentSlot>& s,
                                size_t x) { return s->extent < x; });
  if (it == reads.end() || (*it)->extent != e) return nullptr;
  return it->get();
}

// Starts loading sample k's stored bytes into the cache. A shuffled batch
// reads its small samples from all over the resident chunks, so each copy
// would otherwise wait for a cache (and TLB) miss in turn: measured on 20 M
// one-byte samples under the full shuffle, 37 % of the time was spent in
// the copies of single bytes. Asking a few samples ahead lets the misses
// overlap.
void Loader::Impl::Prefetch(LoaderBatchWork& item, size_t k) {
  const uint64_t sample = item.indices[k];
  for (size_t t = 0; t < tensors.size(); ++t) {
    ExtentSlot* const slot_ptr = HeldSlot(item, t, sample);
    if (slot_ptr == nullptr) continue;
    ExtentSlot& slot = *slot_ptr;
    if (!slot.status.ok()) continue;
    const uint64_t j = sample - slot.data.first_sample();
    if (j >= slot.data.size()) continue;
    const ByteSpan bytes = slot.data.bytes(j);
    if (!bytes.empty()) __builtin_prefetch(bytes.data());
  }
}

Status Loader::Impl::Decode(LoaderBatchWork& item) {
  // One transformer per worker thread: its scratch buffers and scaler are
  // reused from sample to sample.
  thread_local ImageTransformer transformer;
  const size_t n = item.indices.size();
  item.failed.assign(n, 0);
  size_t failures = 0;
  // Small samples only: a decode or a video clip takes far longer than a
  // miss, and bigger samples stream through the hardware prefetcher.
  constexpr size_t kAhead = 8;
  const bool prefetch = !per_sample_reads && n > kAhead && small_samples;
  if (prefetch) {
    for (size_t k = 0; k < kAhead; ++k) Prefetch(item, k);
  }
  // Decodes sample k of tensor t; false when the batch fails with the
  // sample's error (kFail), else a failed sample is marked (kSkip).
  Status error;
  auto decode = [&](size_t k, size_t t, bool wait) {
    Status s = DecodeSample(item, k, t, transformer, wait);
    if (s.ok()) return true;
    if (options.on_error == ErrorPolicy::kFail) {
      item.ReleaseInputs();
      error = std::move(s);
      return false;
    }
    item.failed[k] = 1;
    ++failures;
    return true;
  };
  for (size_t k = 0; k < n; ++k) {
    if (prefetch && k + kAhead < n) Prefetch(item, k + kAhead);
    for (size_t t = 0; t < tensors.size() && !item.failed[k]; ++t) {
      if (!decode(k, t, false)) return error;
    }
  }
  // Clips whose video another batch was decoding: it may be done by now,
  // and else is worth waiting for (it waits on nothing).
  for (const auto& [k, t] : item.deferred) {
    if (!item.failed[k] && !decode(k, t, true)) return error;
  }
  // The chunks (or samples) go as soon as no batch needs them.
  item.ReleaseInputs();
  if (failures > 0) {
    // kSkip: the batch closes ranks over the samples that failed.
    skipped.fetch_add(failures, std::memory_order_relaxed);
    for (TensorBatch& out : item.tensors) {
      size_t w = 0;
      uint64_t offset = 0;
      for (size_t k = 0; k < n; ++k) {
        if (item.failed[k]) continue;
        const uint64_t size = out.offsets_[k + 1] - out.offsets_[k];
        std::memmove(out.data_.data() + offset,
                     out.data_.data() + out.offsets_[k], size);
        out.shapes_[w] = out.shapes_[k];
        out.offsets_[w] = offset;
        offset += size;
        ++w;
      }
      out.shapes_.resize(w);
      out.offsets_.resize(w + 1);
      out.offsets_[w] = offset;
      out.bytes_ = offset;
      out.ragged_ = false;
      for (size_t k = 1; k < w; ++k)
        if (out.shapes_[k] != out.shapes_[0]) out.ragged_ = true;
    }
    size_t w = 0;
    for (size_t k = 0; k < n; ++k) {
      if (item.failed[k]) continue;
      item.indices[w] = item.indices[k];
      item.clips[w++] = item.clips[k];
    }
    item.indices.resize(w);
    item.clips.resize(w);
  }
  for (TensorBatch& out : item.tensors) {
    if (out.ragged_ || out.shapes_.empty()) {
      out.batch_shape_ = Shape{out.shapes_.size()};
      continue;
    }
    uint64_t dims[Shape::kMaxRank] = {out.shapes_.size()};
    const Shape& s = out.shapes_[0];
    const size_t rank = std::min<size_t>(s.rank(), Shape::kMaxRank - 1);
    for (size_t d = 0; d < rank; ++d) dims[d + 1] = s[d];
    out.batch_shape_ = Shape(std::span<const uint64_t>(dims, rank + 1));
  }
  return Status::OK();
}

}  // namespace shoal
