// End-to-end test of `shoal ingest idx` on the real Fashion-MNIST test set
// (Debian package dataset-fashion-mnist): the CLI ingests it, then every
// image and label read through the C++ API must equal the bytes of the IDX
// files, parsed here independently of loader/internal/idx.cc. A few samples
// exported with `shoal get` are also compared with NumPy's reading of the gz
// files.
//
// The dataset is a declared dependency (scripts/install-deps.sh installs
// it); when it is missing the test fails rather than skips, so a machine
// without it cannot pass silently.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "format/dataset.h"

namespace shoal {
namespace {

constexpr char kDataDir[] = "/usr/share/datasets/fashion-mnist";
constexpr uint64_t kCount = 10000;
constexpr uint64_t kImageBytes = 28 * 28;

// An IDX array of unsigned bytes: its dimensions and elements.
struct IdxBytes {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

// Reads a gzip-compressed IDX file of unsigned bytes (type 0x08) with zlib,
// per the IDX layout: 0, 0, type, rank, big-endian uint32 dims, elements.
IdxBytes ReadGzIdx(const std::string& path) {
  IdxBytes out;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    ADD_FAILURE() << "cannot open " << path;
    return out;
  }
  unsigned char magic[4];
  EXPECT_EQ(gzread(file, magic, 4), 4);
  EXPECT_EQ(magic[0], 0);
  EXPECT_EQ(magic[1], 0);
  EXPECT_EQ(magic[2], 0x08) << path << " does not hold unsigned bytes";
  uint64_t size = 1;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char be[4];
    EXPECT_EQ(gzread(file, be, 4), 4);
    out.dims.push_back(uint32_t{be[0]} << 24 | uint32_t{be[1]} << 16 |
                       uint32_t{be[2]} << 8 | uint32_t{be[3]});
    size *= out.dims.back();
  }
  out.data.resize(size);
  EXPECT_EQ(gzread(file, out.data.data(), static_cast<unsigned>(size)),
            static_cast<int>(size));
  unsigned char extra;
  EXPECT_EQ(gzread(file, &extra, 1), 0) << path << " has trailing bytes";
  gzclose(file);
  return out;
}

// Runs `command` through the shell; its exit status (-1 when it did not
// exit normally).
int RunCommand(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class FashionMnistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    images_path_ = std::string(kDataDir) + "/t10k-images-idx3-ubyte.gz";
    labels_path_ = std::string(kDataDir) + "/t10k-labels-idx1-ubyte.gz";
    for (const std::string& path : {images_path_, labels_path_}) {
      ASSERT_TRUE(std::filesystem::exists(path))
          << path << " is missing: run scripts/install-deps.sh (it installs "
          << "the Debian package dataset-fashion-mnist)";
    }
    std::string pattern = ::testing::TempDir() + "fashion_mnist_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    dataset_ = dir_ + "/ds";
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string images_path_, labels_path_, dir_, dataset_;
};

TEST_F(FashionMnistTest, IngestedDatasetEqualsIdxFiles) {
  ASSERT_EQ(RunCommand(std::string(SHOAL_CLI) + " ingest idx '" + images_path_ +
                       "' '" + labels_path_ + "' '" + dataset_ +
                       "' --compression lz4 --class-names fashion-mnist"),
            0);

  const IdxBytes images = ReadGzIdx(images_path_);
  const IdxBytes labels = ReadGzIdx(labels_path_);
  ASSERT_EQ(images.dims, (std::vector<uint32_t>{kCount, 28, 28}));
  ASSERT_EQ(labels.dims, (std::vector<uint32_t>{kCount}));

  auto dataset = Dataset::Open(dataset_, {.read_only = true});
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ((*dataset)->len(), kCount);
  auto image_tensor = (*dataset)->tensor("images");
  auto label_tensor = (*dataset)->tensor("labels");
  ASSERT_TRUE(image_tensor.ok()) << image_tensor.status();
  ASSERT_TRUE(label_tensor.ok()) << label_tensor.status();
  EXPECT_EQ((*image_tensor)->htype(), HType::kImage);
  EXPECT_EQ((*image_tensor)->spec().chunk_compression, "lz4");
  EXPECT_EQ((*label_tensor)->htype(), HType::kClassLabel);
  EXPECT_EQ((*label_tensor)->dtype(), DType::kUInt32);
  const std::vector<std::string> names = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  EXPECT_EQ((*label_tensor)->spec().class_names, names);
  // Where the samples came from is in each tensor's info, once; the samples
  // have no info of their own.
  EXPECT_EQ((*image_tensor)->spec().info,
            R"({"file":"t10k-images-idx3-ubyte.gz","samples":10000,)"
            R"("source":"idx"})");
  EXPECT_EQ((*label_tensor)->spec().info,
            R"({"file":"t10k-labels-idx1-ubyte.gz","samples":10000,)"
            R"("source":"idx"})");
  for (const uint64_t i : {uint64_t{0}, kCount - 1}) {
    auto info = (*image_tensor)->ReadInfo(i);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(*info, "") << "sample " << i;
  }

  auto image_samples = (*image_tensor)->ReadRange(0, kCount);
  ASSERT_TRUE(image_samples.ok()) << image_samples.status();
  auto label_samples = (*label_tensor)->ReadRange(0, kCount);
  ASSERT_TRUE(label_samples.ok()) << label_samples.status();
  ASSERT_EQ(image_samples->size(), kCount);
  ASSERT_EQ(label_samples->size(), kCount);
  uint64_t mismatches = 0;
  for (uint64_t i = 0; i < kCount; ++i) {
    const Sample& image = (*image_samples)[i];
    const Sample& label = (*label_samples)[i];
    const bool image_ok =
        image.dtype == DType::kUInt8 && image.shape == Shape{28, 28, 1} &&
        image.data.size() == kImageBytes &&
        std::memcmp(image.data.data(), images.data.data() + i * kImageBytes,
                    kImageBytes) == 0;
    uint32_t value = UINT32_MAX;
    if (label.data.size() == 4) std::memcpy(&value, label.data.data(), 4);
    const bool label_ok = label.shape == Shape{} && value == labels.data[i];
    if (!image_ok || !label_ok) {
      // Report the first few only: one bug would otherwise print 10,000.
      if (++mismatches <= 5) {
        ADD_FAILURE() << "sample " << i << ": image "
                      << (image_ok ? "ok" : "differs") << ", label " << value
                      << " (IDX " << int{labels.data[i]} << ")";
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);

  // The same samples through `shoal get`, checked against NumPy's own
  // reading of the gz files.
  for (const int index : {0, 1234, 9999}) {
    const std::string npy = dir_ + "/" + std::to_string(index) + ".npy";
    const std::string label_npy =
        dir_ + "/label" + std::to_string(index) + ".npy";
    ASSERT_EQ(
        RunCommand(std::string(SHOAL_CLI) + " get '" + dataset_ + "' images " +
                   std::to_string(index) + " -o '" + npy + "'"),
        0);
    ASSERT_EQ(
        RunCommand(std::string(SHOAL_CLI) + " get '" + dataset_ + "' labels " +
                   std::to_string(index) + " -o '" + label_npy + "'"),
        0);
    const std::string check =
        "import gzip, sys, numpy as np\n"
        "images_gz, labels_gz, npy, label_npy, i = sys.argv[1:]\n"
        "i = int(i)\n"
        "src = np.frombuffer(gzip.open(images_gz).read(), np.uint8, "
        "offset=16).reshape(-1, 28, 28)\n"
        "lbl = np.frombuffer(gzip.open(labels_gz).read(), np.uint8, "
        "offset=8)\n"
        "a = np.load(npy)\n"
        "assert a.dtype == np.uint8 and a.shape == (28, 28, 1), a.shape\n"
        "assert np.array_equal(a[:, :, 0], src[i])\n"
        "b = np.load(label_npy)\n"
        "assert b.dtype == np.uint32 and b.shape == () and b == lbl[i]\n";
    EXPECT_EQ(RunCommand("/usr/bin/python3 -c '" + check + "' '" +
                         images_path_ + "' '" + labels_path_ + "' '" + npy +
                         "' '" + label_npy + "' " + std::to_string(index)),
              0)
        << "NumPy disagrees with `shoal get` on sample " << index;
  }
}

}  // namespace
}  // namespace shoal
