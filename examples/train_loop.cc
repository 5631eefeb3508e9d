// A training loop's side of shoal: open a dataset, make a Loader, pull
// batches for a few epochs. The "model" here is a stand-in that reads every
// byte of each batch (a per-channel mean for images, a label histogram), so
// the loop costs what touching the data costs and nothing more.
//
//   train_loop DATASET [--epochs N] [--batch N] [--threads N] [--size S]
//
// With an image tensor stored as JPEG or PNG, images get the usual training
// transform (random-resized-crop to S x S + horizontal flip); other tensors
// come as stored. The loader's State() after each epoch is what a
// checkpoint would save to resume mid-run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shoal.h"

namespace {

struct Args {
  std::string dataset;
  uint64_t epochs = 2;
  uint64_t batch = 64;
  int threads = 0;
  uint32_t size = 224;
};

bool Parse(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](auto& out) {
      if (i + 1 >= argc) return false;
      out = static_cast<std::remove_reference_t<decltype(out)>>(
          std::strtoull(argv[++i], nullptr, 10));
      return true;
    };
    bool ok = true;
    if (a == "--epochs") ok = value(args.epochs);
    else if (a == "--batch") ok = value(args.batch);
    else if (a == "--threads") ok = value(args.threads);
    else if (a == "--size") ok = value(args.size);
    else if (!a.starts_with("--") && args.dataset.empty()) args.dataset = a;
    else ok = false;
    if (!ok) return false;
  }
  return !args.dataset.empty();
}

int Run(const Args& args) {
  auto opened = shoal::Dataset::Open(args.dataset, {.read_only = true});
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const shoal::Dataset> dataset(std::move(*opened));
  shoal::LoaderOptions options{.batch_size = args.batch,
                               .epochs = args.epochs,
                               .seed = 42,
                               .threads = args.threads};
  for (const shoal::Tensor* t : dataset->tensors()) {
    const std::string& codec = t->spec().sample_compression;
    if (t->htype() == shoal::HType::kImage &&
        (codec == "jpeg" || codec == "png" || codec == "image")) {
      options.transforms[t->name()] = shoal::ImageTransform::Train(args.size);
    }
  }
  auto loader = shoal::Loader::Create(dataset, options);
  if (!loader.ok()) {
    std::fprintf(stderr, "%s\n", loader.status().ToString().c_str());
    return 1;
  }
  uint64_t steps = 0, samples = 0;
  double checksum = 0;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    if (!batch.ok()) {
      std::fprintf(stderr, "%s\n", batch.status().ToString().c_str());
      return 1;
    }
    if (!batch->has_value()) {
      std::printf("epoch done after %llu steps; resume state %zu bytes\n",
                  static_cast<unsigned long long>(steps),
                  (*loader)->State().size());
      continue;
    }
    // The "training step": read every byte of the batch.
    for (const shoal::TensorBatch& t : (*batch)->tensors()) {
      uint64_t sum = 0;
      for (std::byte b : t.data()) sum += std::to_integer<uint8_t>(b);
      checksum += static_cast<double>(sum) / (t.data().size() + 1);
    }
    samples += (*batch)->size();
    ++steps;
  }
  const shoal::LoaderMetrics m = (*loader)->metrics();
  std::printf(
      "%llu steps, %llu samples; consumer waited %.3f s; peak memory %.1f "
      "MB (checksum %.3f)\n",
      static_cast<unsigned long long>(steps),
      static_cast<unsigned long long>(samples),
      m.pipeline.consumer_wait_seconds, m.memory_peak / 1e6, checksum);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: train_loop DATASET [--epochs N] [--batch N] "
                 "[--threads N] [--size S]\n");
    return 2;
  }
  return Run(args);
}
