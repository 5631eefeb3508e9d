#include "format/internal/parallel.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include "base/tsan.h"

namespace shoal::internal {

void ParallelFor(size_t n, int max_threads,
                 const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || max_threads == 1) {
    fn(0, n);
    return;
  }
  // TSan cannot see through TBB's scheduler (base/tsan.h) that the
  // caller's writes come before the bodies and theirs before it goes on.
  // Isolated: a thread waiting for the ranges takes no other task of the
  // arena, such as another of the loader's decodes, which would reuse the
  // thread's scratch (transformers, video frames) under the caller.
  int token = 0;
  auto loop = [&] {
    SHOAL_TSAN_RELEASE(&token);
    oneapi::tbb::this_task_arena::isolate([&] {
      oneapi::tbb::parallel_for(
          oneapi::tbb::blocked_range<size_t>(0, n),
          [&](const oneapi::tbb::blocked_range<size_t>& r) {
            SHOAL_TSAN_ACQUIRE(&token);
            fn(r.begin(), r.end());
            SHOAL_TSAN_RELEASE(&token);
          });
    });
    SHOAL_TSAN_ACQUIRE(&token);
  };
  if (max_threads <= 0 ||
      max_threads >= oneapi::tbb::this_task_arena::max_concurrency()) {
    loop();
    return;
  }
  oneapi::tbb::task_arena arena(max_threads);
  arena.execute(loop);
}

}  // namespace shoal::internal
