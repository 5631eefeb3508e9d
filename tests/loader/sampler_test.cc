// Tests for loader/sampler.h: epoch orders, the sharding and drop_last rule,
// determinism (pinned by golden plans from an independent implementation of
// the header's algorithm), resume through saved states, hostile states,
// chunk liveness against a simulated loader, shuffle quality, and speed.
#include "loader/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/coding.h"

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr ShuffleMode kModes[] = {ShuffleMode::kNone, ShuffleMode::kChunk,
                                  ShuffleMode::kFull};

SamplerOptions Options(uint64_t batch_size, ShuffleMode shuffle,
                       uint64_t shuffle_buffer = 8, uint64_t seed = 1) {
  SamplerOptions options;
  options.batch_size = batch_size;
  options.shuffle = shuffle;
  options.shuffle_buffer = shuffle_buffer;
  options.seed = seed;
  return options;
}

EpochPlan Plan(const ChunkLayout& layout, const SamplerOptions& options,
               uint64_t epoch = 0, uint64_t first_batch = 0) {
  Result<EpochPlan> plan = MakeEpochPlan(layout, options, epoch, first_batch);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *std::move(plan) : EpochPlan{};
}

std::vector<uint64_t> Iota(uint64_t n) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), uint64_t{0});
  return v;
}

std::vector<uint64_t> Sorted(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Chunks of 1 to 2*mean samples, deterministic in `seed`.
ChunkLayout IrregularLayout(uint64_t num_samples, uint64_t mean,
                            uint64_t seed) {
  ChunkLayout layout;
  layout.num_samples = num_samples;
  uint64_t state = seed;
  for (uint64_t end = 0; end < num_samples;) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    end = std::min(end + 1 + (state >> 33) % (2 * mean), num_samples);
    layout.chunk_ends.push_back(end);
    layout.chunk_bytes.push_back(1000 + (state >> 40) % 9000);
  }
  return layout;
}

// Batch sizes of a plan.
std::vector<uint64_t> BatchSizes(const EpochPlan& plan) {
  std::vector<uint64_t> sizes, batch;
  for (EpochPlan::Cursor cursor = plan.Batches(); cursor.Next(batch);) {
    sizes.push_back(batch.size());
  }
  return sizes;
}

TEST(ShuffleModeTest, NamesRoundTrip) {
  for (ShuffleMode mode : kModes) {
    Result<ShuffleMode> parsed = ParseShuffleMode(ShuffleModeName(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  Result<ShuffleMode> bad = ParseShuffleMode("random");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("random"));
}

TEST(SamplerTest, NoneIsIdentity) {
  const ChunkLayout layout = UniformChunkLayout(1000, 64);
  const EpochPlan plan = Plan(layout, Options(100, ShuffleMode::kNone), 5);
  EXPECT_EQ(plan.AllSamples(), Iota(1000));
  EXPECT_EQ(plan.BatchEnds().size(), 10u);
  EXPECT_EQ(plan.BatchEnds().back(), 1000u);
  EXPECT_EQ(plan.epoch, 5u);
  EXPECT_EQ(plan.epoch_batches, 10u);
}

// Golden plans computed by an independent Python implementation of the
// algorithm written in sampler.h. A change here changes every user's batches
// and invalidates their saved states: it must be deliberate.
TEST(SamplerTest, GoldenPlans) {
  ChunkLayout layout;
  layout.num_samples = 10;
  layout.chunk_ends = {3, 6, 9, 10};
  SamplerOptions options = Options(4, ShuffleMode::kChunk, 4, 42);
  EXPECT_THAT(Plan(layout, options, 0).AllSamples(),
              ElementsAre(9, 7, 0, 1, 2, 6, 3, 8, 5, 4));
  EXPECT_THAT(Plan(layout, options, 1).AllSamples(),
              ElementsAre(9, 8, 7, 0, 3, 4, 5, 2, 1, 6));
  EXPECT_THAT(Plan(layout, options, 0).BatchEnds(), ElementsAre(4, 8, 10));
  options.world_size = 2;
  options.rank = 1;
  EXPECT_THAT(Plan(layout, options, 0).AllSamples(),
              ElementsAre(1, 3, 4, 2, 5));
  EXPECT_THAT(Plan(layout, options, 0).BatchEnds(), ElementsAre(4, 5));

  options = Options(4, ShuffleMode::kFull, 0, 42);
  EXPECT_THAT(Plan(layout, options, 0).AllSamples(),
              ElementsAre(6, 3, 8, 4, 2, 7, 1, 5, 0, 9));
  EXPECT_THAT(Plan(layout, options, 1).AllSamples(),
              ElementsAre(3, 8, 2, 0, 4, 7, 9, 1, 6, 5));

  layout.num_samples = 25;
  layout.chunk_ends = {4, 9, 10, 16, 25};
  options = Options(3, ShuffleMode::kChunk, 5, 7);
  options.drop_last = true;
  options.world_size = 2;
  options.rank = 1;
  EXPECT_THAT(Plan(layout, options, 3).AllSamples(),
              ElementsAre(3, 7, 9, 10, 11, 8, 13, 12, 5, 4, 6, 14));
  options = Options(3, ShuffleMode::kFull, 5, 7);
  options.world_size = 3;
  options.rank = 2;
  const EpochPlan full = Plan(layout, options, 3);
  EXPECT_THAT(full.AllSamples(), ElementsAre(6, 10, 11, 14, 2, 17, 9, 5));
  EXPECT_THAT(full.BatchEnds(), ElementsAre(3, 6, 8));
}

TEST(SamplerTest, EachEpochIsAPermutation) {
  for (ShuffleMode mode : kModes) {
    for (const ChunkLayout& layout :
         {UniformChunkLayout(1000, 100), IrregularLayout(997, 30, 3),
          UniformChunkLayout(5, 1)}) {
      for (bool drop_last : {false, true}) {
        SamplerOptions options = Options(16, mode, 50);
        options.drop_last = drop_last;
        for (uint64_t epoch = 0; epoch < 3; ++epoch) {
          SCOPED_TRACE(std::string(ShuffleModeName(mode)) + " n " +
                       std::to_string(layout.num_samples) + " drop_last " +
                       std::to_string(drop_last) + " epoch " +
                       std::to_string(epoch));
          const EpochPlan plan = Plan(layout, options, epoch);
          const uint64_t n = layout.num_samples;
          if (!drop_last) {
            EXPECT_EQ(Sorted(plan.AllSamples()), Iota(n));
            continue;
          }
          EXPECT_EQ(plan.AllSamples().size(), n / 16 * 16);
          std::vector<uint64_t> sorted = Sorted(plan.AllSamples());
          EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
          EXPECT_TRUE(sorted.empty() || sorted.back() < n);
        }
      }
    }
  }
}

TEST(SamplerTest, EpochsAndSeedsDiffer) {
  const ChunkLayout layout = UniformChunkLayout(10000, 100);
  for (ShuffleMode mode : {ShuffleMode::kChunk, ShuffleMode::kFull}) {
    SCOPED_TRACE(ShuffleModeName(mode));
    const SamplerOptions options = Options(32, mode, 500, 9);
    const EpochPlan epoch0 = Plan(layout, options, 0);
    EXPECT_NE(epoch0.AllSamples(), Plan(layout, options, 1).AllSamples());
    EXPECT_NE(epoch0.AllSamples(), Plan(layout, options, 2).AllSamples());
    EXPECT_NE(epoch0.AllSamples(),
              Plan(layout, Options(32, mode, 500, 10), 0).AllSamples());
    // A good shuffle leaves few samples where they were.
    EXPECT_NE(epoch0.AllSamples(), Iota(10000));
  }
}

TEST(SamplerTest, SameInputsSamePlan) {
  const ChunkLayout layout = IrregularLayout(5000, 40, 8);
  for (ShuffleMode mode : kModes) {
    SamplerOptions options = Options(20, mode, 300, 77);
    options.world_size = 3;
    options.rank = 2;
    const EpochPlan a = Plan(layout, options, 4);
    const EpochPlan b = Plan(layout, options, 4);
    EXPECT_EQ(a.AllSamples(), b.AllSamples());
    EXPECT_EQ(a.BatchEnds(), b.BatchEnds());
    EXPECT_EQ(a.chunk_uses, b.chunk_uses);
    Result<Sampler> sampler = Sampler::Create(layout, options);
    ASSERT_TRUE(sampler.ok());
    sampler->SetEpoch(4);
    EXPECT_EQ(sampler->MakePlan().AllSamples(), a.AllSamples());
  }
}

// The rule of the file comment, over many shapes including n < world and
// n < batch: equal batch counts, full batches but the last, disjoint shards
// that cover the epoch (or all but fewer than W*b samples with drop_last).
TEST(SamplerTest, ShardsAreDisjointCoveringAndEqual) {
  int cases = 0;
  for (uint64_t n : {0, 1, 2, 3, 5, 7, 10, 31, 64, 100, 257}) {
    const ChunkLayout layout = IrregularLayout(n, 4, n);
    for (uint64_t b : {1, 2, 3, 8, 64, 300}) {
      for (uint32_t world : {1, 2, 3, 4, 8, 16}) {
        for (bool drop_last : {false, true}) {
          for (ShuffleMode mode : kModes) {
            SCOPED_TRACE("n " + std::to_string(n) + " b " + std::to_string(b) +
                         " world " + std::to_string(world) + " drop_last " +
                         std::to_string(drop_last) + " " +
                         std::string(ShuffleModeName(mode)));
            ++cases;
            const uint64_t most = (n + world - 1) / world;
            const uint64_t expected_batches =
                drop_last ? n / (world * b) : (most + b - 1) / b;
            std::vector<uint64_t> all;
            for (uint32_t rank = 0; rank < world; ++rank) {
              SamplerOptions options = Options(b, mode, 5, n);
              options.drop_last = drop_last;
              options.rank = rank;
              options.world_size = world;
              EXPECT_EQ(BatchesPerEpoch(n, options), expected_batches);
              const EpochPlan plan = Plan(layout, options);
              ASSERT_EQ(plan.num_batches(), expected_batches);
              EXPECT_EQ(plan.epoch_batches, expected_batches);
              const std::vector<uint64_t> sizes = BatchSizes(plan);
              for (size_t j = 0; j + 1 < sizes.size(); ++j) {
                EXPECT_EQ(sizes[j], b);
              }
              if (!sizes.empty()) {
                EXPECT_LE(sizes.back(), b);
                if (drop_last) {
                  EXPECT_EQ(sizes.back(), b);
                }
                // Empty only when the final round has fewer samples than
                // ranks.
                const uint64_t final_round =
                    n - uint64_t{world} * (expected_batches - 1) * b;
                if (sizes.back() == 0) {
                  EXPECT_LT(final_round, world);
                }
              }
              const std::vector<uint64_t> samples = plan.AllSamples();
              all.insert(all.end(), samples.begin(), samples.end());
            }
            const std::vector<uint64_t> sorted = Sorted(all);
            EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()),
                      sorted.end());
            if (drop_last) {
              EXPECT_EQ(all.size(), expected_batches * world * b);
              EXPECT_LT(n - all.size(), uint64_t{world} * b);
              EXPECT_TRUE(sorted.empty() || sorted.back() < n);
            } else {
              EXPECT_EQ(sorted, Iota(n));
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 11 * 6 * 6 * 2 * 3);
}

TEST(SamplerTest, FewerSamplesThanRanksGivesEmptyFinalBatches) {
  const ChunkLayout layout = UniformChunkLayout(3, 2);
  SamplerOptions options = Options(4, ShuffleMode::kChunk);
  options.world_size = 5;
  for (uint32_t rank = 0; rank < 5; ++rank) {
    options.rank = rank;
    const EpochPlan plan = Plan(layout, options);
    ASSERT_EQ(plan.num_batches(), 1u);
    EXPECT_THAT(BatchSizes(plan), ElementsAre(rank < 3 ? 1u : 0u));
  }
}

// A dataset's len() may be shorter than the chunked tensor: chunks past it
// are ignored and the one across it is cut.
TEST(SamplerTest, LayoutLongerThanDataset) {
  ChunkLayout layout = UniformChunkLayout(100, 10);
  layout.num_samples = 55;
  for (ShuffleMode mode : kModes) {
    const EpochPlan plan = Plan(layout, Options(8, mode, 7));
    EXPECT_EQ(Sorted(plan.AllSamples()), Iota(55));
    for (const ChunkUse& use : plan.chunk_uses) EXPECT_LE(use.chunk, 5u);
  }
}

// A simulated Loader that holds each chunk from the first batch that reads
// it until no later batch does, found by scanning, checked against the
// plan's chunk fields.
void ExpectChunkFieldsMatchSimulation(const ChunkLayout& layout,
                                      const EpochPlan& plan) {
  auto chunk_of = [&](uint64_t sample) {
    uint32_t chunk = 0;
    while (layout.chunk_ends[chunk] <= sample) ++chunk;
    return chunk;
  };
  const uint64_t batches = plan.num_batches();
  std::vector<std::set<uint32_t>> needed(batches);
  std::vector<uint64_t> sizes(batches);
  std::map<uint32_t, uint64_t> samples_of_chunk;
  const std::vector<uint64_t> all = plan.AllSamples();
  const std::vector<uint64_t> ends = plan.BatchEnds();
  ASSERT_EQ(ends.size(), batches);
  for (uint64_t j = 0; j < batches; ++j) {
    for (uint64_t k = j == 0 ? 0 : ends[j - 1]; k < ends[j]; ++k) {
      needed[j].insert(chunk_of(all[k]));
      ++samples_of_chunk[chunk_of(all[k])];
      ++sizes[j];
    }
  }

  std::set<uint32_t> held, released, fetched;
  std::vector<ChunkUse> uses;
  std::map<uint32_t, size_t> use_of;
  uint64_t max_live = 0, max_bytes = 0, max_decoded = 0, decoded = 0;
  for (uint64_t j = 0; j < batches; ++j) {
    for (uint32_t chunk : needed[j]) {
      if (held.insert(chunk).second) {
        EXPECT_FALSE(released.count(chunk)) << "chunk fetched twice";
        use_of[chunk] = uses.size();
        uses.push_back({chunk, j, j, samples_of_chunk[chunk]});
        decoded += samples_of_chunk[chunk];
      }
      uses[use_of[chunk]].last_batch = j;
    }
    uint64_t bytes = 0;
    for (uint32_t chunk : held) {
      bytes += layout.chunk_bytes.empty() ? 0 : layout.chunk_bytes[chunk];
    }
    max_live = std::max<uint64_t>(max_live, held.size());
    max_bytes = std::max(max_bytes, bytes);
    max_decoded = std::max(max_decoded, decoded);
    decoded -= sizes[j];
    for (auto it = held.begin(); it != held.end();) {
      bool used_later = false;
      for (uint64_t later = j + 1; later < batches && !used_later; ++later) {
        used_later = needed[later].count(*it) > 0;
      }
      if (used_later) {
        ++it;
      } else {
        released.insert(*it);
        it = held.erase(it);
      }
    }
  }
  EXPECT_EQ(plan.chunk_uses, uses);
  EXPECT_EQ(plan.max_live_chunks, max_live);
  EXPECT_EQ(plan.max_live_bytes, max_bytes);
  EXPECT_EQ(plan.max_decoded_samples, max_decoded);
}

TEST(SamplerTest, ChunkLivenessMatchesSimulation) {
  for (ShuffleMode mode : kModes) {
    for (const ChunkLayout& layout :
         {IrregularLayout(600, 25, 1), UniformChunkLayout(480, 48, 4096),
          UniformChunkLayout(40, 1)}) {
      for (uint64_t buffer : {0, 1, 10, 100, 1000}) {
        if (mode != ShuffleMode::kChunk && buffer != 0) continue;
        for (uint32_t world : {1, 3}) {
          SCOPED_TRACE(std::string(ShuffleModeName(mode)) + " buffer " +
                       std::to_string(buffer) + " world " +
                       std::to_string(world));
          SamplerOptions options = Options(16, mode, buffer, 5);
          options.world_size = world;
          options.rank = world - 1;
          const EpochPlan plan = Plan(layout, options, 2);
          ExpectChunkFieldsMatchSimulation(layout, plan);
          // A resumed plan counts from its own first batch.
          ExpectChunkFieldsMatchSimulation(
              layout, Plan(layout, options, 2,
                           std::min<uint64_t>(3, plan.epoch_batches)));
        }
      }
    }
  }
}

// Why kChunk exists: every chunk is read once per epoch, each rank reads
// little more than its share, and few chunks are live at once.
TEST(SamplerTest, ChunkModeKeepsLocality) {
  const ChunkLayout layout = UniformChunkLayout(10000, 100, 8 << 20);
  SamplerOptions options = Options(64, ShuffleMode::kChunk, 0);
  options.world_size = 4;
  uint64_t reads = 0;
  for (uint32_t rank = 0; rank < 4; ++rank) {
    options.rank = rank;
    const EpochPlan plan = Plan(layout, options);
    reads += plan.chunk_uses.size();
    // Without a buffer a batch of 64 spans at most 2 chunks of 100.
    EXPECT_LE(plan.max_live_chunks, 2u);
    EXPECT_EQ(plan.max_live_bytes, plan.max_live_chunks * (8 << 20));
  }
  EXPECT_LE(reads, 100u + 3);  // a segment boundary splits at most 3 chunks

  options = Options(64, ShuffleMode::kChunk, 1000);
  const EpochPlan buffered = Plan(layout, options);
  EXPECT_EQ(buffered.chunk_uses.size(), 100u);
  // About 1 + B * H(C) / C = 1 + 1000 * 5.19 / 100 = 53 chunks.
  EXPECT_GT(buffered.max_live_chunks, 20u);
  EXPECT_LT(buffered.max_live_chunks, 80u);
  EXPECT_LT(buffered.max_decoded_samples, 1000u + 2 * 100 + 64);

  const EpochPlan full = Plan(layout, Options(64, ShuffleMode::kFull));
  EXPECT_GT(full.max_live_chunks, 90u);
}

// Resuming at every cut point gives exactly the uninterrupted plan's
// remaining batches, through MakeEpochPlan and through saved states.
TEST(SamplerTest, ResumeAtEveryCutMatchesUninterrupted) {
  const ChunkLayout layout = IrregularLayout(23, 4, 11);
  for (ShuffleMode mode : kModes) {
    for (bool drop_last : {false, true}) {
      for (uint32_t rank = 0; rank < 2; ++rank) {
        SamplerOptions options = Options(3, mode, 5, 99);
        options.drop_last = drop_last;
        options.world_size = 2;
        options.rank = rank;
        const EpochPlan whole = Plan(layout, options, 6);
        Result<Sampler> sampler = Sampler::Create(layout, options);
        ASSERT_TRUE(sampler.ok());
        sampler->SetEpoch(6);
        for (uint64_t cut = 0; cut <= whole.num_batches(); ++cut) {
          SCOPED_TRACE(std::string(ShuffleModeName(mode)) + " drop_last " +
                       std::to_string(drop_last) + " rank " +
                       std::to_string(rank) + " cut " + std::to_string(cut));
          const std::vector<uint64_t> whole_ends = whole.BatchEnds();
          const std::vector<uint64_t> whole_samples = whole.AllSamples();
          const uint64_t skipped = cut == 0 ? 0 : whole_ends[cut - 1];
          std::vector<uint64_t> expected_ends;
          for (uint64_t j = cut; j < whole.num_batches(); ++j) {
            expected_ends.push_back(whole_ends[j] - skipped);
          }
          const std::vector<uint64_t> expected_samples(
              whole_samples.begin() + skipped, whole_samples.end());

          const EpochPlan direct = Plan(layout, options, 6, cut);
          EXPECT_EQ(direct.AllSamples(), expected_samples);
          EXPECT_EQ(direct.BatchEnds(), expected_ends);
          EXPECT_EQ(direct.first_batch, cut);

          // Save at the cut, restore into a fresh sampler (of the other
          // rank's state: all ranks share the position).
          SamplerOptions other = options;
          other.rank = 1 - rank;
          Result<Sampler> saver = Sampler::Create(layout, other);
          ASSERT_TRUE(saver.ok());
          saver->SetEpoch(6);
          ASSERT_TRUE(saver->Advance(cut).ok());
          Result<Sampler> restored = Sampler::Create(layout, options);
          ASSERT_TRUE(restored.ok());
          ASSERT_TRUE(restored->Restore(saver->State()).ok());
          EXPECT_EQ(restored->position(), (SamplerPosition{6, cut}));
          const EpochPlan resumed = restored->MakePlan();
          EXPECT_EQ(resumed.AllSamples(), expected_samples);
          EXPECT_EQ(resumed.BatchEnds(), expected_ends);

          if (cut < whole.num_batches()) {
            ASSERT_TRUE(sampler->Advance().ok());
          }
        }
        EXPECT_EQ(sampler->Advance().code(), StatusCode::kOutOfRange);
        EXPECT_EQ(sampler->position().batch, whole.num_batches());
        EXPECT_EQ(sampler->MakePlan().num_batches(), 0u);
      }
    }
  }
}

TEST(SamplerTest, RejectsInvalidInputs) {
  const ChunkLayout good = UniformChunkLayout(100, 10);
  auto code = [](const ChunkLayout& layout, const SamplerOptions& options,
                 uint64_t first_batch = 0) {
    return MakeEpochPlan(layout, options, 0, first_batch).status().code();
  };
  const SamplerOptions options = Options(8, ShuffleMode::kChunk);
  EXPECT_EQ(code(good, options), StatusCode::kOk);
  SamplerOptions bad = options;
  bad.batch_size = 0;
  EXPECT_EQ(code(good, bad), StatusCode::kInvalidArgument);
  bad = options;
  bad.world_size = 0;
  EXPECT_EQ(code(good, bad), StatusCode::kInvalidArgument);
  bad = options;
  bad.world_size = 2;
  bad.rank = 2;
  EXPECT_EQ(code(good, bad), StatusCode::kInvalidArgument);
  bad = options;
  bad.shuffle = static_cast<ShuffleMode>(7);
  EXPECT_EQ(code(good, bad), StatusCode::kInvalidArgument);

  ChunkLayout layout = good;
  layout.chunk_ends[3] = layout.chunk_ends[2];
  EXPECT_EQ(code(layout, options), StatusCode::kInvalidArgument);
  layout = good;
  layout.chunk_ends.insert(layout.chunk_ends.begin(), 0);
  EXPECT_EQ(code(layout, options), StatusCode::kInvalidArgument);
  layout = good;
  layout.num_samples = 101;
  EXPECT_EQ(code(layout, options), StatusCode::kInvalidArgument);
  layout = good;
  layout.chunk_ends.clear();
  EXPECT_EQ(code(layout, options), StatusCode::kInvalidArgument);
  layout = good;
  layout.chunk_bytes = {1, 2, 3};
  EXPECT_EQ(code(layout, options), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ChunkLayout{}, options), StatusCode::kOk);  // empty dataset

  EXPECT_EQ(code(good, options, 13), StatusCode::kOk);  // empty plan
  EXPECT_EQ(code(good, options, 14), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Sampler::Create(good, bad).ok());
}

TEST(SamplerStateTest, RoundTrip) {
  const ChunkLayout layout = IrregularLayout(1000, 30, 2);
  SamplerOptions options = Options(16, ShuffleMode::kChunk, 100, 1ull << 60);
  options.world_size = 8;
  const SamplerPosition position{123456789, 7};
  const std::string state = EncodeSamplerState(layout, options, position);
  EXPECT_LT(state.size(), 64u);
  Result<SamplerPosition> decoded = DecodeSamplerState(state, layout, options);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, position);
  // The state does not depend on the rank.
  options.rank = 5;
  EXPECT_EQ(EncodeSamplerState(layout, options, position), state);
}

TEST(SamplerStateTest, RejectsOtherSamplers) {
  const ChunkLayout layout = UniformChunkLayout(1000, 50);
  SamplerOptions options = Options(16, ShuffleMode::kChunk, 100, 3);
  options.world_size = 2;
  const std::string state = EncodeSamplerState(layout, options, {2, 5});

  auto expect_rejected = [&](const ChunkLayout& l, const SamplerOptions& o,
                             std::string_view field) {
    Result<SamplerPosition> decoded = DecodeSamplerState(state, l, o);
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(decoded.status().message()),
                HasSubstr(std::string(field)));
  };
  SamplerOptions other = options;
  other.seed = 4;
  expect_rejected(layout, other, "seed 3, but this sampler has 4");
  other = options;
  other.batch_size = 32;
  expect_rejected(layout, other, "batch_size 16, but this sampler has 32");
  other = options;
  other.drop_last = true;
  expect_rejected(layout, other, "drop_last");
  other = options;
  other.shuffle = ShuffleMode::kFull;
  expect_rejected(layout, other, "shuffle chunk, but this sampler has full");
  other = options;
  other.shuffle_buffer = 200;
  expect_rejected(layout, other, "shuffle_buffer");
  other = options;
  other.world_size = 4;
  expect_rejected(layout, other, "world_size 2, but this sampler has 4");
  expect_rejected(UniformChunkLayout(1001, 50), options,
                  "num_samples 1000, but this sampler has 1001");
  expect_rejected(UniformChunkLayout(1000, 40), options, "chunk layout");
  // chunk_bytes and the rank are not part of what a plan's order means.
  other = options;
  other.rank = 1;
  EXPECT_TRUE(
      DecodeSamplerState(state, UniformChunkLayout(1000, 50, 9), other).ok());

  // A valid state whose batch is past the end of the epoch.
  const std::string past = EncodeSamplerState(layout, options, {2, 32});
  EXPECT_TRUE(DecodeSamplerState(past, layout, options).ok());  // 32 = end
  Result<SamplerPosition> beyond = DecodeSamplerState(
      EncodeSamplerState(layout, options, {2, 33}), layout, options);
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(beyond.status().message(), HasSubstr("past the end"));

  Result<Sampler> sampler = Sampler::Create(layout, options);
  ASSERT_TRUE(sampler.ok());
  sampler->SetEpoch(9);
  other = options;
  other.seed = 4;
  EXPECT_FALSE(
      sampler->Restore(EncodeSamplerState(layout, other, {1, 1})).ok());
  EXPECT_EQ(sampler->position(), (SamplerPosition{9, 0}));
}

// A state with a good checksum over arbitrary fields, as a hostile or buggy
// writer could produce.
std::string Sealed(std::string body) {
  ByteWriter writer;
  writer.PutBytes(body);
  writer.PutU64(Checksum64(AsBytes(body)));
  return std::move(writer).Release();
}

TEST(SamplerStateTest, RejectsDamagedBytes) {
  const ChunkLayout layout = UniformChunkLayout(1000, 50);
  const SamplerOptions options = Options(16, ShuffleMode::kChunk, 100, 3);
  const std::string state = EncodeSamplerState(layout, options, {2, 5});
  auto decode = [&](std::string_view bytes) {
    return DecodeSamplerState(bytes, layout, options).status();
  };
  EXPECT_EQ(decode("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode("{\"epoch\": 2}").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode("SHSS").code(), StatusCode::kCorruption);
  for (size_t size = 0; size < state.size(); ++size) {
    EXPECT_FALSE(decode(state.substr(0, size)).ok()) << size;
  }
  EXPECT_EQ(decode(state + "x").code(), StatusCode::kCorruption);
  for (size_t bit = 0; bit < state.size() * 8; ++bit) {
    std::string flipped = state;
    flipped[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_FALSE(decode(flipped).ok()) << "bit " << bit;
  }
  uint64_t rng = 12345;
  for (int i = 0; i < 2000; ++i) {
    std::string garbage = "SHSS";
    rng = rng * 6364136223846793005u + 1;
    const size_t size = (rng >> 33) % 60;
    for (size_t k = 0; k < size; ++k) {
      rng = rng * 6364136223846793005u + 1;
      garbage.push_back(static_cast<char>(rng >> 56));
    }
    EXPECT_FALSE(decode(garbage).ok());
    EXPECT_FALSE(decode(Sealed(garbage)).ok());
  }

  // Good checksums, bad contents.
  const std::string body = state.substr(0, state.size() - 8);
  EXPECT_TRUE(decode(Sealed(body)).ok());
  EXPECT_EQ(decode(Sealed(body + "\x01")).code(), StatusCode::kCorruption);
  std::string newer = body;
  newer[4] = 2;
  EXPECT_EQ(decode(Sealed(newer)).code(), StatusCode::kUnimplemented);
  std::string zero = body;
  zero[4] = 0;
  EXPECT_EQ(decode(Sealed(zero)).code(), StatusCode::kCorruption);
  // drop_last and shuffle are the two bytes after batch_size (varint 16).
  const size_t drop_last_at = body.size() - 4;
  ASSERT_EQ(body[drop_last_at - 1], 16);
  std::string bad_flag = body;
  bad_flag[drop_last_at] = 2;
  EXPECT_EQ(decode(Sealed(bad_flag)).code(), StatusCode::kCorruption);
  std::string bad_mode = body;
  bad_mode[drop_last_at + 1] = 3;
  EXPECT_EQ(decode(Sealed(bad_mode)).code(), StatusCode::kCorruption);
  // An epoch varint that never ends.
  EXPECT_EQ(
      decode(Sealed(std::string("SHSS\x01") + std::string(12, '\xff'))).code(),
      StatusCode::kCorruption);
}

TEST(ShuffleQualityTest, ExactOnSmallOrders) {
  const std::vector<uint64_t> identity = Iota(8);
  const std::vector<uint64_t> ends = {4, 8};
  Result<ShuffleQuality> q = MeasureShuffle(identity, ends);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->mean_displacement, 0);
  EXPECT_DOUBLE_EQ(q->spearman, 1);
  EXPECT_EQ(q->classes_per_batch, 0);

  const std::vector<uint64_t> reversed = {7, 6, 5, 4, 3, 2, 1, 0};
  q = MeasureShuffle(reversed, ends);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->spearman, -1);
  // |p - (7 - p)| over p = 0..7 sums to 32.
  EXPECT_DOUBLE_EQ(q->mean_displacement, 32.0 / 8 / 8);

  // Ranks, not raw indices: a shard {10, 20, 30} in order is the identity.
  const std::vector<uint64_t> shard = {10, 20, 30};
  const std::vector<uint64_t> shard_ends = {3};
  q = MeasureShuffle(shard, shard_ends);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->mean_displacement, 0);
  EXPECT_DOUBLE_EQ(q->spearman, 1);

  const std::vector<uint32_t> labels = {0, 0, 1, 1, 2, 2, 3, 3};
  q = MeasureShuffle(identity, ends, labels);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->classes_per_batch, 2);
  const std::vector<uint64_t> mixed = {0, 2, 4, 6, 1, 3, 5, 7};
  q = MeasureShuffle(mixed, ends, labels);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->classes_per_batch, 4);
  // An empty final batch does not count.
  const std::vector<uint64_t> with_empty = {4, 8, 8};
  q = MeasureShuffle(mixed, with_empty, labels);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->classes_per_batch, 4);

  EXPECT_TRUE(MeasureShuffle({}, {}).ok());
}

TEST(ShuffleQualityTest, RejectsBadInput) {
  const std::vector<uint64_t> twice = {0, 1, 1};
  const std::vector<uint64_t> ends = {3};
  EXPECT_EQ(MeasureShuffle(twice, ends).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<uint64_t> order = {0, 1, 2};
  const std::vector<uint64_t> short_ends = {2};
  EXPECT_EQ(MeasureShuffle(order, short_ends).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<uint64_t> unsorted_ends = {2, 1, 3};
  EXPECT_EQ(MeasureShuffle(order, unsorted_ends).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<uint32_t> labels = {0, 1};
  EXPECT_EQ(MeasureShuffle(order, ends, labels).status().code(),
            StatusCode::kInvalidArgument);
}

// Labels of a dataset sorted by class: `classes` runs of equal size.
std::vector<uint32_t> SortedLabels(uint64_t n, uint32_t classes) {
  std::vector<uint32_t> labels(n);
  for (uint64_t i = 0; i < n; ++i) labels[i] = i * classes / n;
  return labels;
}

ShuffleQuality Measure(const EpochPlan& plan,
                       const std::vector<uint32_t>& labels) {
  Result<ShuffleQuality> q =
      MeasureShuffle(plan.AllSamples(), plan.BatchEnds(), labels);
  EXPECT_TRUE(q.ok()) << q.status();
  return q.value_or({});
}

TEST(ShuffleQualityTest, FullLooksUniform) {
  const ChunkLayout layout = UniformChunkLayout(100000, 1000);
  const std::vector<uint32_t> labels = SortedLabels(100000, 10);
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    const ShuffleQuality q =
        Measure(Plan(layout, Options(64, ShuffleMode::kFull), epoch), labels);
    RecordProperty("full_spearman_" + std::to_string(epoch),
                   std::to_string(q.spearman));
    EXPECT_LT(std::abs(q.spearman), 0.02);
    EXPECT_NEAR(q.mean_displacement, 1.0 / 3, 0.02);
    // 64 uniform draws from 10 equal classes miss a class with chance
    // 10 * 0.9^64 = 0.012: nearly every batch has all 10.
    EXPECT_GT(q.classes_per_batch, 9.9);
  }
}

TEST(ShuffleQualityTest, NoneIsOrdered) {
  const ChunkLayout layout = UniformChunkLayout(10000, 1000);
  const ShuffleQuality q = Measure(
      Plan(layout, Options(64, ShuffleMode::kNone)), SortedLabels(10000, 10));
  EXPECT_EQ(q.mean_displacement, 0);
  EXPECT_DOUBLE_EQ(q.spearman, 1);
  // 157 batches; the class boundaries at k * 1000 fall inside a batch of 64
  // except at 8000.
  EXPECT_NEAR(q.classes_per_batch, (157.0 + 8) / 157, 1e-9);
}

// The realistic case: 10 class-pure chunks of 1000, buffer 2000,
// batch 64. Chunk order alone gives batches of one class (1.05 per batch, as
// kNone). The first batches draw from a buffer holding exactly two chunks, so
// even they have 2 classes; later the geometric stay of a sample in the
// buffer (a chunk's last sample leaves after about B * H(1000) = 15000
// draws) mixes in every chunk streamed so far. Measured: 6.4 to 6.6 classes
// per batch in each of 20 epochs; kFull gives 9.99.
TEST(ShuffleQualityTest, ChunkMixesWithinTheBuffer) {
  const ChunkLayout layout = UniformChunkLayout(10000, 1000);
  const std::vector<uint32_t> labels = SortedLabels(10000, 10);
  double mean_abs_spearman = 0, mean_displacement = 0, mean_classes = 0;
  constexpr int kEpochs = 20;
  for (uint64_t epoch = 0; epoch < kEpochs; ++epoch) {
    const ShuffleQuality q = Measure(
        Plan(layout, Options(64, ShuffleMode::kChunk, 2000, 5), epoch), labels);
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    EXPECT_GT(q.classes_per_batch, 5.0);
    EXPECT_LT(q.classes_per_batch, 9.0);  // locality has a price
    // The order follows the permutation of 10 chunks, whose |spearman| is
    // 0.27 on average and can come near 1 only with a near-sorted draw.
    EXPECT_LT(std::abs(q.spearman), 0.9);
    mean_abs_spearman += std::abs(q.spearman) / kEpochs;
    mean_displacement += q.mean_displacement / kEpochs;
    mean_classes += q.classes_per_batch / kEpochs;
  }
  RecordProperty("chunk_mean_abs_spearman", std::to_string(mean_abs_spearman));
  RecordProperty("chunk_mean_displacement", std::to_string(mean_displacement));
  RecordProperty("chunk_classes_per_batch", std::to_string(mean_classes));
  std::printf(
      "chunk 10x1000, buffer 2000, batch 64, 20 epochs: mean |spearman| "
      "%.3f, displacement %.3f, classes per batch %.2f\n",
      mean_abs_spearman, mean_displacement, mean_classes);
  EXPECT_LT(mean_abs_spearman, 0.35);
  EXPECT_NEAR(mean_displacement, 1.0 / 3, 0.06);
}

// ImageNet-like: 1000 classes of 1281 samples sorted by class, chunks of
// about 75 (8 MB of JPEGs), batch 256, the default buffer. Reported for
// `shoal bench`; the bounds only catch a broken sampler.
TEST(ShuffleQualityTest, ImageNetLikeReport) {
  const uint64_t n = 1281000;
  const ChunkLayout layout = IrregularLayout(n, 75, 4);
  const std::vector<uint32_t> labels = SortedLabels(n, 1000);
  for (ShuffleMode mode : kModes) {
    const ShuffleQuality q = Measure(
        Plan(layout, Options(256, mode, kDefaultShuffleBuffer)), labels);
    std::printf(
        "imagenet-like %s: spearman %.4f, displacement %.3f, classes "
        "per batch %.1f of 256\n",
        std::string(ShuffleModeName(mode)).c_str(), q.spearman,
        q.mean_displacement, q.classes_per_batch);
    switch (mode) {
      case ShuffleMode::kNone:
        EXPECT_LT(q.classes_per_batch, 2.0);
        break;
      case ShuffleMode::kChunk:
        EXPECT_LT(std::abs(q.spearman), 0.1);
        EXPECT_GT(q.classes_per_batch, 50.0);
        break;
      case ShuffleMode::kFull:
        EXPECT_GT(q.classes_per_batch, 200.0);
        break;
    }
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHOAL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHOAL_SANITIZED 1
#endif
#endif

#ifdef SHOAL_SANITIZED
// The sanitizers' allocator statistics (sanitizer/allocator_interface.h,
// which GCC does not install).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

bool Sanitized() {
#ifdef SHOAL_SANITIZED
  return true;
#else
  return false;
#endif
}

// Heap bytes in use: from the sanitizers' allocator when it replaces
// glibc's, else glibc's small blocks plus its mmapped ones.
uint64_t HeapInUse() {
#ifdef SHOAL_SANITIZED
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

// What a plan holds grows with the chunks for the none and chunk shuffles
// and is 4 bytes a sample for a full permutation (the loader's state
// against the sample count, measured by the allocator, not by the plan).
TEST(SamplerTest, PlanMemoryGrowsWithChunksNotSamples) {
  const uint64_t n = 4'000'000;
  const ChunkLayout layout = UniformChunkLayout(n, 40'000, 1 << 20);
  for (ShuffleMode mode : kModes) {
    SCOPED_TRACE(ShuffleModeName(mode));
    const uint64_t before = HeapInUse();
    Result<EpochPlan> plan =
        MakeEpochPlan(layout, Options(256, mode, kDefaultShuffleBuffer), 0);
    ASSERT_TRUE(plan.ok());
    const double held = static_cast<double>(HeapInUse() - before);
    std::printf("%s plan of %llu samples holds %.2f bytes a sample\n",
                std::string(ShuffleModeName(mode)).c_str(),
                static_cast<unsigned long long>(n), held / n);
    if (mode == ShuffleMode::kFull) {
      EXPECT_LE(held, 4.0 * n + (64 << 10));
    } else {
      EXPECT_LT(held, 64 << 10);  // 100 chunks: a few kilobytes
    }
    // A cursor adds the shuffle buffer, not the samples.
    const uint64_t planned = HeapInUse();
    EpochPlan::Cursor cursor = plan->Batches();
    std::vector<uint64_t> batch;
    ASSERT_TRUE(cursor.Next(batch));
    EXPECT_LT(HeapInUse() - planned, kDefaultShuffleBuffer * 8 + (64 << 10));
  }
}

// An ImageNet-size plan (1.28M samples in chunks of about 75) must cost well
// under a second, so that the Loader can make one at every epoch start.
TEST(SamplerTest, ImageNetSizePlanIsFast) {
  const ChunkLayout layout = IrregularLayout(1281167, 75, 1);
  for (ShuffleMode mode : kModes) {
    const auto start = std::chrono::steady_clock::now();
    const EpochPlan plan =
        Plan(layout, Options(256, mode, kDefaultShuffleBuffer));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::printf(
        "%s plan of 1.28M samples: %.1f ms, %zu chunks read, "
        "%llu live at most, %llu decoded samples at most\n",
        std::string(ShuffleModeName(mode)).c_str(), seconds * 1000,
        plan.chunk_uses.size(),
        static_cast<unsigned long long>(plan.max_live_chunks),
        static_cast<unsigned long long>(plan.max_decoded_samples));
    EXPECT_EQ(plan.num_samples, 1281167u);
    EXPECT_LT(seconds, Sanitized() ? 20.0 : 1.0);
  }
}

}  // namespace
}  // namespace shoal
