// ThreadSanitizer suppressions for programs that run a Pipeline (the oneTBB
// flow graph in loader/pipeline.cc).
//
// Debian's libtbb.so is not built with TSan, so TSan cannot see the
// synchronization inside TBB's scheduler: that a task is created before it
// runs, that a task's memory is freed before the pool hands it out again,
// that graph::wait_for_all() returns after every task has finished. Without
// that, TBB's own objects look racy. pipeline.cc annotates the hand-offs of
// shoal's data (items, stage state, setup and teardown) so TSan still checks
// those; the patterns below only cover TBB's objects:
//   race_top  a report where either access has its top frame in TBB's
//             headers (tasks, node buffers, caches, aggregators). A race
//             between two accesses in shoal's or a test's code is still
//             reported, whatever TBB frames sit below them.
//   race      stacks through TBB's node-internal containers and atomics
//             (whose top frame is in std::list, std::deque, std::atomic or
//             operator new/delete) and through the graph teardown after
//             wait_for_all().
// A test binary uses them by defining, in one source file:
//   extern "C" const char* __tsan_default_suppressions() {
//     return shoal::internal::kPipelineTsanSuppressions;
//   }
//
// Thread-safety: a constant.
#ifndef SHOAL_LOADER_INTERNAL_PIPELINE_TSAN_H_
#define SHOAL_LOADER_INTERNAL_PIPELINE_TSAN_H_

namespace shoal::internal {

inline constexpr char kPipelineTsanSuppressions[] =
    "race_top:/oneapi/tbb/\n"
    "race:aggregator_generic\n"
    "race:tbb::detail::d1::successor_cache\n"
    "race:tbb::detail::d1::node_cache\n"
    "race:tbb::detail::d1::graph::~graph\n"
    "race:PipelineCore::Impl::DestroyGraph\n";

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_PIPELINE_TSAN_H_
