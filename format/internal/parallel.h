// Parallel loops of the format's reads: the blocks of one large sample are
// checked and decompressed on oneTBB's threads.
//
// The loop runs in the calling thread's task arena: inside the loader, the
// loader's (so its thread count bounds it); elsewhere, oneTBB's default
// arena, which a caller bounds with its own tbb::task_arena or with
// max_threads here.
//
// Thread-safety: ParallelFor may be called from any thread, nested too. The
// caller must not hold a lock that `fn` takes. While it waits, the calling
// thread runs only `fn`'s ranges (isolation), so the caller's thread-local
// scratch is safe.
#ifndef SHOAL_FORMAT_INTERNAL_PARALLEL_H_
#define SHOAL_FORMAT_INTERNAL_PARALLEL_H_

#include <cstddef>
#include <functional>

namespace shoal::internal {

/// Calls fn(begin, end) on disjoint ranges that together cover [0, n), on
/// up to `max_threads` threads (0: as many as the calling arena has; 1: on
/// the calling thread, in order). Returns when every call has returned.
void ParallelFor(size_t n, int max_threads,
                 const std::function<void(size_t, size_t)>& fn);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_PARALLEL_H_
