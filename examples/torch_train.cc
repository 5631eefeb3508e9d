// shoal batches as libtorch tensors without a copy: every TensorBatch buffer
// the Loader hands out becomes a torch::Tensor through torch::from_blob, and
// a small conv net takes SGD steps on them.
//
//   torch_train DATASET [--epochs N] [--batch N] [--threads N] [--size S]
//                       [--steps N]
//
// Ownership. A Batch is on loan from the Loader: its buffers go back to the
// loader (to be overwritten by a later batch) when the Batch is destroyed.
// from_blob does not own memory, so each Batch is moved into a
// std::shared_ptr and every tensor's deleter holds a copy of it: the buffers
// stay valid for exactly as long as some torch tensor still points into
// them (also if autograd or another thread keeps one), and go back to the
// loader when the last such tensor dies. The loop drops its own reference
// right after wrapping, so the tensors are the only owners.
//
// Element types map one to one where libtorch 1.13 has the same type (bool,
// uint8, int8, int16, int32, int64, float16, float32, float64). Torch has no
// uint16/uint32/uint64: a tensor of those is an error, except a class_label
// tensor of uint32 (what `shoal ingest images` writes), whose bytes are read
// as int32 (exact for labels below 2^31, which the training step checks).
// Ragged tensors (samples of different shapes, e.g. images without a
// transform) become one from_blob view per sample, each holding the Batch
// the same way.
//
// The program verifies the zero-copy claim as it runs: every tensor's
// data_ptr() must be the TensorBatch's data pointer, the first batch's
// contents are checksummed both through shoal's bytes and through torch ops
// (after the loop has let go of the Batch, so only the tensors keep it
// alive), and at the end every wrapped Batch must have been returned by a
// tensor deleter. With an image tensor stored as JPEG or PNG, images get the
// training transform (random-resized-crop to S x S + flip), as in
// train_loop.cc.
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "shoal.h"

namespace {

struct Args {
  std::string dataset;
  uint64_t epochs = 2;
  uint64_t batch = 64;
  int threads = 0;
  uint32_t size = 224;
  uint64_t steps = 0;  // 0: no limit
};

bool Parse(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](auto& out) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      const char* text = argv[++i];
      const unsigned long long v = std::strtoull(text, &end, 10);
      if (end == text || *end != '\0' || text[0] == '-') return false;
      out = static_cast<std::remove_reference_t<decltype(out)>>(v);
      return true;
    };
    bool ok = true;
    if (a == "--epochs") {
      ok = value(args.epochs);
    } else if (a == "--batch") {
      ok = value(args.batch) && args.batch > 0;
    } else if (a == "--threads") {
      ok = value(args.threads);
    } else if (a == "--size") {
      ok = value(args.size) && args.size > 0;
    } else if (a == "--steps") {
      ok = value(args.steps);
    } else if (!a.starts_with("--") && args.dataset.empty()) {
      args.dataset = a;
    } else {
      ok = false;
    }
    if (!ok) return false;
  }
  return !args.dataset.empty();
}

// The torch element type with the memory layout of `dtype`, if there is one.
std::optional<torch::ScalarType> TorchType(shoal::DType dtype) {
  switch (dtype) {
    case shoal::DType::kBool:
      return torch::kBool;
    case shoal::DType::kUInt8:
      return torch::kUInt8;
    case shoal::DType::kInt8:
      return torch::kInt8;
    case shoal::DType::kInt16:
      return torch::kInt16;
    case shoal::DType::kInt32:
      return torch::kInt32;
    case shoal::DType::kInt64:
      return torch::kInt64;
    case shoal::DType::kFloat16:
      return torch::kFloat16;
    case shoal::DType::kFloat32:
      return torch::kFloat32;
    case shoal::DType::kFloat64:
      return torch::kFloat64;
    case shoal::DType::kUInt16:
    case shoal::DType::kUInt32:
    case shoal::DType::kUInt64:
      break;
  }
  return std::nullopt;
}

std::vector<int64_t> Sizes(const shoal::Shape& shape) {
  std::vector<int64_t> sizes;
  for (uint64_t d : shape.dims()) sizes.push_back(static_cast<int64_t>(d));
  return sizes;
}

// One TensorBatch as torch tensors: `dense` when the batch has one shape,
// else one view per sample in `samples`.
struct Wrapped {
  const shoal::TensorBatch* source = nullptr;
  torch::Tensor dense;
  std::vector<torch::Tensor> samples;
};

// Wraps every tensor of `batch` without copying; each tensor's deleter keeps
// `batch` alive. `as_int32` names the uint32 class_label tensors to read as
// int32. Returns false (with `error` set) for a dtype torch cannot hold.
bool WrapBatch(const std::shared_ptr<shoal::Batch>& batch,
               const std::vector<std::string>& as_int32,
               std::map<std::string, Wrapped>& out, std::string& error) {
  for (const shoal::TensorBatch& t : batch->tensors()) {
    std::optional<torch::ScalarType> type = TorchType(t.dtype());
    if (!type && t.dtype() == shoal::DType::kUInt32 &&
        std::find(as_int32.begin(), as_int32.end(), t.name()) !=
            as_int32.end()) {
      type = torch::kInt32;
    }
    if (!type) {
      error = "tensor '" + t.name() + "': dtype " +
              std::string(shoal::DTypeName(t.dtype())) +
              " has no libtorch equivalent (torch 1.13 has no uint16, "
              "uint32 or uint64); leave it out with LoaderOptions::tensors";
      return false;
    }
    const torch::TensorOptions options = torch::TensorOptions().dtype(*type);
    // The deleter runs when the tensor's storage dies; the Batch goes back
    // to the loader when the last copy of `batch` does.
    auto deleter = [batch](void*) {};
    // from_blob wants a mutable pointer; the buffer belongs to this Batch
    // until it is returned, so in-place torch ops would be safe too.
    std::byte* base = const_cast<std::byte*>(t.data().data());
    Wrapped& w = out[t.name()];
    w.source = &t;
    if (!t.ragged()) {
      w.dense = torch::from_blob(base, Sizes(t.shape()), deleter, options);
    } else {
      for (size_t k = 0; k < t.size(); ++k) {
        w.samples.push_back(torch::from_blob(
            base + t.offsets()[k], Sizes(t.shapes()[k]), deleter, options));
      }
    }
  }
  return true;
}

// Position-weighted sum of bytes, computed by hand over shoal's bytes...
int64_t ByteChecksum(shoal::ByteSpan bytes) {
  int64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    sum += static_cast<int64_t>(std::to_integer<uint8_t>(bytes[i])) *
           static_cast<int64_t>(i % 251 + 1);
  }
  return sum;
}

// ...and with torch ops over the tensor's own memory (reinterpreted as
// bytes, no conversion of the elements).
int64_t TorchChecksum(const torch::Tensor& tensor) {
  if (tensor.numel() == 0) return 0;
  torch::Tensor bytes = tensor.reshape({-1}).view(torch::kUInt8);
  torch::Tensor weights =
      torch::arange(bytes.numel(), torch::kLong).remainder(251).add(1);
  return bytes.to(torch::kLong).mul(weights).sum().item<int64_t>();
}

// A tiny classifier: downscale, conv, global average pool, linear.
struct NetImpl : torch::nn::Module {
  NetImpl(int64_t channels, int64_t classes)
      : conv(register_module(
            "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 16, 3)
                                          .stride(2)
                                          .padding(1)))),
        fc(register_module("fc", torch::nn::Linear(16, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::adaptive_avg_pool2d(x, {56, 56});
    x = torch::relu(conv->forward(x));
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc->forward(x);
  }

  torch::nn::Conv2d conv;
  torch::nn::Linear fc;
};
TORCH_MODULE(Net);

// [B, H, W, C] (or [B, H, W]) uint8 -> normalised float NCHW.
torch::Tensor Normalise(const torch::Tensor& images) {
  torch::Tensor x = images.dim() == 3 ? images.unsqueeze(3) : images;
  x = x.permute({0, 3, 1, 2}).to(torch::kFloat).div_(255.0);
  const int64_t channels = x.size(1);
  torch::Tensor mean, std;
  if (channels == 3) {  // ImageNet statistics
    mean = torch::tensor({0.485f, 0.456f, 0.406f});
    std = torch::tensor({0.229f, 0.224f, 0.225f});
  } else {
    mean = torch::full({channels}, 0.5f);
    std = torch::full({channels}, 0.25f);
  }
  return x.sub_(mean.view({1, channels, 1, 1}))
      .div_(std.view({1, channels, 1, 1}));
}

int Run(const Args& args) {
  auto opened = shoal::Dataset::Open(args.dataset, {.read_only = true});
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const shoal::Dataset> dataset(std::move(*opened));
  shoal::LoaderOptions options;
  options.batch_size = args.batch;
  options.epochs = args.epochs;
  options.seed = 42;
  options.threads = args.threads;
  std::string image_name, label_name;
  int64_t classes = 0;
  std::vector<std::string> as_int32;
  for (const shoal::Tensor* t : dataset->tensors()) {
    const std::string& codec = t->spec().sample_compression;
    if (t->htype() == shoal::HType::kImage) {
      if (codec == "jpeg" || codec == "png" || codec == "image") {
        options.transforms[t->name()] = shoal::ImageTransform::Train(args.size);
      }
      if (image_name.empty() && t->dtype() == shoal::DType::kUInt8) {
        image_name = t->name();
      }
    }
    if (t->htype() == shoal::HType::kClassLabel) {
      if (t->dtype() == shoal::DType::kUInt32) as_int32.push_back(t->name());
      if (label_name.empty() && t->spec().rank == 0) {
        label_name = t->name();
        classes = static_cast<int64_t>(t->spec().class_names.size());
      }
    }
  }
  if (classes == 0) classes = 1000;  // labels without class names
  auto loader = shoal::Loader::Create(dataset, options);
  if (!loader.ok()) {
    std::fprintf(stderr, "%s\n", loader.status().ToString().c_str());
    return 1;
  }
  const std::string labels_text =
      label_name.empty()
          ? "-"
          : "'" + label_name + "' (" + std::to_string(classes) + " classes)";
  std::printf("torch_train: images %s, labels %s, torch %d threads\n",
              image_name.empty() ? "-" : ("'" + image_name + "'").c_str(),
              labels_text.c_str(), torch::get_num_threads());

  torch::manual_seed(42);
  std::optional<Net> net;
  std::optional<torch::optim::SGD> sgd;

  // Counts Batches returned to the loader by the last tensor deleter.
  auto returned = std::make_shared<std::atomic<uint64_t>>(0);
  uint64_t steps = 0, samples = 0, wrapped_batches = 0, pointer_checks = 0;
  // Per epoch: the mean training loss (or, without labels, the mean of
  // the batches' absolute channel means).
  uint64_t epoch_steps = 0, epoch_values = 0;
  double epoch_value = 0, step_seconds = 0;
  const char* value_name = label_name.empty() ? "mean |channel mean|" : "loss";
  bool checked_contents = false;
  std::vector<std::string> ragged_reported;
  const auto start = std::chrono::steady_clock::now();
  while (!(*loader)->done() && (args.steps == 0 || steps < args.steps)) {
    auto next = (*loader)->Next();
    if (!next.ok()) {
      std::fprintf(stderr, "%s\n", next.status().ToString().c_str());
      return 1;
    }
    if (!next->has_value()) {
      if (epoch_steps > 0) {
        std::printf("epoch done after %llu steps",
                    static_cast<unsigned long long>(steps));
        if (epoch_values > 0) {
          std::printf("; mean %s %.4f", value_name,
                      epoch_value / static_cast<double>(epoch_values));
        }
        std::printf("\n");
      }
      epoch_steps = epoch_values = 0;
      epoch_value = 0;
      continue;
    }
    const auto step_start = std::chrono::steady_clock::now();
    std::shared_ptr<shoal::Batch> batch(
        new shoal::Batch(std::move(**next)), [returned](shoal::Batch* b) {
          delete b;  // its buffers go back to the loader here
          returned->fetch_add(1);
        });
    next->reset();
    const size_t batch_size = batch->size();
    std::map<std::string, Wrapped> tensors;
    std::string error;
    if (!WrapBatch(batch, as_int32, tensors, error)) {
      std::fprintf(stderr, "torch_train: %s\n", error.c_str());
      return 1;
    }
    ++wrapped_batches;

    // Zero copy, part 1: every tensor is the TensorBatch's own memory.
    for (const auto& [name, w] : tensors) {
      const std::byte* base = w.source->data().data();
      if (w.dense.defined()) {
        if (w.dense.data_ptr() != base ||
            static_cast<uint64_t>(w.dense.nbytes()) !=
                w.source->data().size()) {
          std::fprintf(stderr,
                       "torch_train: tensor '%s' is not the batch "
                       "buffer\n",
                       name.c_str());
          return 1;
        }
        ++pointer_checks;
      } else {
        for (size_t k = 0; k < w.samples.size(); ++k) {
          if (w.samples[k].data_ptr() != base + w.source->offsets()[k]) {
            std::fprintf(stderr,
                         "torch_train: sample %zu of '%s' is not in "
                         "the batch buffer\n",
                         k, name.c_str());
            return 1;
          }
          ++pointer_checks;
        }
        if (std::find(ragged_reported.begin(), ragged_reported.end(), name) ==
            ragged_reported.end()) {
          std::printf(
              "tensor '%s' is ragged: one from_blob view per sample "
              "(not used for training)\n",
              name.c_str());
          ragged_reported.push_back(name);
        }
      }
    }
    // Zero copy, part 2 (first batch): the contents seen through torch are
    // the batch's bytes, read after the loop dropped its reference, so the
    // tensors alone keep the Batch alive.
    std::map<std::string, int64_t> shoal_sums;
    if (!checked_contents) {
      for (const auto& [name, w] : tensors) {
        int64_t& sum = shoal_sums[name];
        if (w.dense.defined()) {
          sum = ByteChecksum(w.source->data());
        } else {
          for (size_t k = 0; k < w.source->size(); ++k) {
            sum += ByteChecksum(w.source->sample(k));
          }
        }
      }
    }
    bool held = false;  // does some tensor hold the Batch?
    for (const auto& [name, w] : tensors) {
      held = held || w.dense.defined() || !w.samples.empty();
    }
    const uint64_t returned_before = returned->load();
    batch.reset();
    if (held && returned->load() != returned_before) {
      std::fprintf(stderr,
                   "torch_train: the Batch was returned while its "
                   "tensors were alive\n");
      return 1;
    }
    if (!checked_contents) {
      for (const auto& [name, sum] : shoal_sums) {
        const Wrapped& w = tensors[name];
        int64_t torch_sum = 0;
        std::string what;
        if (w.dense.defined()) {
          torch_sum = TorchChecksum(w.dense);
          what = c10::str(w.dense.sizes(), " ", w.dense.scalar_type());
        } else {
          for (const torch::Tensor& v : w.samples)
            torch_sum += TorchChecksum(v);
          what = c10::str("ragged, ", w.samples.size(), " views");
        }
        std::printf("first batch '%s': %s, checksum shoal %lld, torch %lld\n",
                    name.c_str(), what.c_str(), static_cast<long long>(sum),
                    static_cast<long long>(torch_sum));
        if (torch_sum != sum) {
          std::fprintf(stderr, "torch_train: checksums of '%s' differ\n",
                       name.c_str());
          return 1;
        }
      }
      checked_contents = true;
    }

    // The training step.
    auto image_it = tensors.find(image_name);
    if (image_it != tensors.end() && image_it->second.dense.defined()) {
      torch::Tensor x = Normalise(image_it->second.dense);
      auto label_it = tensors.find(label_name);
      if (label_it != tensors.end() && label_it->second.dense.defined()) {
        torch::Tensor labels = label_it->second.dense.reshape({-1});
        if (labels.min().item<int64_t>() < 0 ||
            labels.max().item<int64_t>() >= classes) {
          std::fprintf(stderr,
                       "torch_train: a label of '%s' is outside "
                       "[0, %lld)\n",
                       label_name.c_str(), static_cast<long long>(classes));
          return 1;
        }
        if (!net) {
          net.emplace(x.size(1), classes);
          sgd.emplace((*net)->parameters(),
                      torch::optim::SGDOptions(0.05).momentum(0.9));
        }
        sgd->zero_grad();
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            (*net)->forward(x), labels.to(torch::kLong));
        loss.backward();
        sgd->step();
        epoch_value += loss.item<double>();
      } else {
        // No labels: the step is the per-channel statistics of the batch.
        epoch_value += x.mean({0, 2, 3}).abs().mean().item<double>();
      }
      ++epoch_values;
    }
    tensors.clear();  // the last tensor deleter returns the Batch
    step_seconds += std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - step_start)
                        .count();
    samples += batch_size;
    ++steps;
    ++epoch_steps;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (epoch_steps > 0) {
    std::printf("stopped after %llu steps",
                static_cast<unsigned long long>(steps));
    if (epoch_values > 0) {
      std::printf("; mean %s %.4f", value_name,
                  epoch_value / static_cast<double>(epoch_values));
    }
    std::printf("\n");
  }
  // Zero copy, part 3: every Batch went back through a tensor deleter.
  if (returned->load() != wrapped_batches) {
    std::fprintf(stderr, "torch_train: %llu of %llu batches were returned\n",
                 static_cast<unsigned long long>(returned->load()),
                 static_cast<unsigned long long>(wrapped_batches));
    return 1;
  }
  const shoal::LoaderMetrics m = (*loader)->metrics();
  std::printf(
      "%llu steps, %llu samples in %.2f s: %.1f samples/s (torch steps "
      "%.2f s, waiting for the loader %.2f s); peak loader memory %.1f MB\n",
      static_cast<unsigned long long>(steps),
      static_cast<unsigned long long>(samples), seconds,
      seconds > 0 ? static_cast<double>(samples) / seconds : 0.0, step_seconds,
      m.pipeline.consumer_wait_seconds, m.memory_peak / 1e6);
  if (steps == 0) {
    std::fprintf(stderr, "torch_train: no batches\n");
    return 1;
  }
  std::printf(
      "zero-copy: verified (%llu data_ptr checks, first-batch checksums "
      "equal, %llu batches returned by tensor deleters)\n",
      static_cast<unsigned long long>(pointer_checks),
      static_cast<unsigned long long>(returned->load()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: torch_train DATASET [--epochs N] [--batch N] "
                 "[--threads N] [--size S] [--steps N]\n");
    return 2;
  }
  try {
    return Run(args);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "torch_train: torch error: %s\n",
                 e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_train: %s\n", e.what());
  }
  return 1;
}
