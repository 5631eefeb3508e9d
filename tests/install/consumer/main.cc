// A user program of an installed shoal: touches each installed library
// (base, codecs, format: codecs, stores, a dataset) through the umbrella
// header only, and prints
// "consumer ok" when everything worked. Failures print the Status and exit 1.
#include <shoal/shoal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void Check(const shoal::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

template <typename T>
T Check(shoal::Result<T> result, const char* what) {
  Check(result.status(), what);
  return std::move(result).value();
}

}  // namespace

int main() {
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += "shoal consumer " + std::to_string(i % 7) + "\n";
  const shoal::Buffer original = shoal::Buffer::CopyOf(text);

  const shoal::Status error = shoal::Corruption("expected");
  if (error.ok() || error.code() != shoal::StatusCode::kCorruption) {
    std::fprintf(stderr, "Status does not carry its code\n");
    return 1;
  }

  auto codec = Check(shoal::MakeByteCodec("zstd:3"), "MakeByteCodec");
  auto compressed = Check(
      shoal::MutableBuffer::Allocate(codec->MaxCompressedSize(original.size())),
      "Allocate");
  const size_t compressed_size =
      Check(codec->Compress(original.span(), compressed.span()), "Compress");
  auto restored =
      Check(shoal::MutableBuffer::Allocate(original.size()), "Allocate");
  Check(codec->Decompress(compressed.span().first(compressed_size),
                          restored.span()),
        "Decompress");
  if (std::move(restored).Freeze().view() != original.view()) {
    std::fprintf(stderr, "zstd round trip changed the bytes\n");
    return 1;
  }

  auto store = Check(shoal::OpenStore("mem://consumer"), "OpenStore");
  Check(store->Write("dir/object", original.span()), "Write");
  const shoal::Buffer read = Check(store->Read("dir/object"), "Read");
  if (read.view() != original.view()) {
    std::fprintf(stderr, "store returned different bytes\n");
    return 1;
  }

  // A dataset round trip through the installed format library.
  auto ds = Check(shoal::Dataset::Create("mem://consumer-ds"), "Dataset::Create");
  shoal::Tensor* values = Check(
      ds->CreateTensor({.name = "values", .dtype = shoal::DType::kInt32,
                        .chunk_compression = "lz4"}),
      "CreateTensor");
  const int32_t sample[3] = {7, -8, 9};
  Check(values->Append(shoal::Shape{3}, std::as_bytes(std::span(sample))), "Append");
  Check(ds->Flush(), "Flush");
  const shoal::Sample back = Check(values->Read(0), "Read");
  if (back.shape != shoal::Shape{3} ||
      back.data.view() != std::string_view(reinterpret_cast<const char*>(sample), 12)) {
    std::fprintf(stderr, "dataset returned a different sample\n");
    return 1;
  }

  std::printf("consumer ok\n");
  return 0;
}
