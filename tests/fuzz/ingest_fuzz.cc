// libFuzzer target for what ingestion and job files parse: .npy headers and
// data, IDX headers and data (plain and gzip), YAML job files and --workers
// specs. Each must answer any input with a Status, never a crash, hang or
// unbounded allocation (run under ASan/UBSan by `make fuzz`).
//
// The first byte picks the parser, the rest is its input. The .npy and IDX
// readers take paths (they stream files), so the input is put in a memfd
// and read through /proc/self/fd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "loader/config.h"
#include "loader/internal/idx.h"
#include "loader/internal/npy.h"

using namespace shoal;

namespace {

// The input as a file; -1 when it cannot be made.
int AsFile(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("shoal_fuzz", MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t which = data[0] % 4;
  ++data;
  --size;
  // Small caps: the readers must refuse claims beyond them, not allocate.
  constexpr uint64_t kMaxBytes = 16 << 20;
  switch (which) {
    case 0:
    case 1: {
      const int fd = AsFile(data, size);
      if (fd < 0) return 0;
      const std::string path = "/proc/self/fd/" + std::to_string(fd);
      if (which == 0) {
        (void)internal::ReadNpyFile(path, kMaxBytes);
      } else {
        // Gzip or plain, by its magic, as the source reads it.
        (void)internal::ReadIdxFile(path, kMaxBytes);
      }
      ::close(fd);
      break;
    }
    case 2:
      (void)ParseJobConfig(
          std::string_view(reinterpret_cast<const char*>(data), size),
          "fuzz.yaml");
      break;
    case 3:
      (void)ParseWorkers(
          std::string_view(reinterpret_cast<const char*>(data), size));
      break;
  }
  return 0;
}
