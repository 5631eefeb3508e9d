// Test hooks for the in-process "mem://NAME" store (format/internal/
// mem_store.cc). Named mem stores live until the process exits, so tests that
// share a name use this to start from an empty store.
//
// Thread-safety: safe to call from any thread; concurrent readers of the store
// see either all objects or none of them.
#ifndef SHOAL_FORMAT_INTERNAL_MEM_STORE_H_
#define SHOAL_FORMAT_INTERNAL_MEM_STORE_H_

#include <string_view>

namespace shoal {

/// Drops every object of the mem store called `name` ("mem://name"). Buffers
/// already read from it stay valid. Does nothing if no such store was opened.
void ResetMemStoreForTesting(std::string_view name);

}  // namespace shoal

#endif  // SHOAL_FORMAT_INTERNAL_MEM_STORE_H_
