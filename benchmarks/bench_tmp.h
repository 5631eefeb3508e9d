// A fresh folder for a benchmark's file:// datasets (mkdtemp), shared by
// the benchmarks that write to disk. The caller removes it.
#ifndef SHOAL_BENCHMARKS_BENCH_TMP_H_
#define SHOAL_BENCHMARKS_BENCH_TMP_H_

#include <stdlib.h>

#include <cerrno>
#include <string>

#include "base/result.h"
#include "base/status.h"

namespace shoal {

/// PARENT/NAME.<six random characters>, made with mode 0700.
inline Result<std::string> MakeTempDir(const std::string& parent,
                                       const std::string& name) {
  // mkdtemp replaces the last six characters, which must be 'X'.
  std::string path = parent + "/" + name + "." + std::string(6, 'X');
  if (::mkdtemp(path.data()) == nullptr) {
    return ErrnoStatus("mkdtemp " + path, errno);
  }
  return path;
}

}  // namespace shoal

#endif  // SHOAL_BENCHMARKS_BENCH_TMP_H_
