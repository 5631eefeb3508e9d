// The checks of VerifyDataset (format/verify.h), apart from the lock and
// the mending that a repair does first (format/verify_repair.cc).
//
// Thread-safety: one call runs on its caller's thread.
#ifndef SHOAL_FORMAT_INTERNAL_VERIFIER_H_
#define SHOAL_FORMAT_INTERNAL_VERIFIER_H_

#include <memory>

#include "format/store.h"
#include "format/verify.h"

namespace shoal::internal {

/// Checks the dataset in `store` (deleting orphans when options.repair;
/// the caller holds the write lock then).
VerifyReport RunVerifier(std::shared_ptr<Store> store,
                         const VerifyOptions& options);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_VERIFIER_H_
