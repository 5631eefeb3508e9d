// Annotations for ThreadSanitizer across oneTBB's scheduler.
//
// libtbb.so is not built with TSan, so TSan cannot see that work handed to
// a TBB task happens before the task runs, or that a task's work happens
// before whoever waits for it goes on. SHOAL_TSAN_RELEASE(addr) before a
// hand-off and SHOAL_TSAN_ACQUIRE(addr) after it tell TSan so. They compile
// to nothing in other builds.
#ifndef SHOAL_BASE_TSAN_H_
#define SHOAL_BASE_TSAN_H_

#if defined(__SANITIZE_THREAD__)
#define SHOAL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHOAL_TSAN 1
#endif
#endif
#ifdef SHOAL_TSAN
#include <sanitizer/tsan_interface.h>
#define SHOAL_TSAN_RELEASE(addr) __tsan_release(static_cast<void*>(addr))
#define SHOAL_TSAN_ACQUIRE(addr) __tsan_acquire(static_cast<void*>(addr))
#else
#define SHOAL_TSAN_RELEASE(addr) static_cast<void>(0)
#define SHOAL_TSAN_ACQUIRE(addr) static_cast<void>(0)
#endif

#endif  // SHOAL_BASE_TSAN_H_
