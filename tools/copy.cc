// `shoal copy SRC DST`: a dataset from one store to another (mem://,
// file://, s3://), object by object, checked on the way, resumable; the
// work is the library's (loader/copy.h).
#include "loader/copy.h"

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct CopyCommand {
  std::string src;
  std::string dst;
  int threads = 8;
};

Result<int> RunCopy(const CopyCommand& c) {
  Progress progress("copy", "objects");
  std::mutex mu;
  CopyOptions options{.threads = c.threads};
  options.progress = [&](const CopyProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    progress.Update(p.objects_done, p.objects_total, p.bytes_copied);
  };
  const Stopwatch clock;
  SHOAL_ASSIGN_OR_RETURN(CopyReport r, CopyDataset(c.src, c.dst, options));
  progress.Finish();
  std::printf(
      "copy: commit %llu of %s to %s: %llu objects, %llu copied (%s), %llu "
      "already there, in %.2f s\n",
      static_cast<unsigned long long>(r.commit), c.src.c_str(), c.dst.c_str(),
      static_cast<unsigned long long>(r.objects),
      static_cast<unsigned long long>(r.copied), FormatBytes(r.bytes).c_str(),
      static_cast<unsigned long long>(r.kept), clock.seconds());
  return kExitOk;
}

}  // namespace

void AddCopyCommand(CLI::App& app, CommandRun* run) {
  auto command = std::make_shared<CopyCommand>();
  CLI::App* cmd = app.add_subcommand(
      "copy", "Copy a dataset to another store (mem://, file://, s3://)");
  cmd->add_option("SRC", command->src, "The dataset to copy (path or URL)")
      ->required();
  cmd->add_option("DST", command->dst,
                  "Where to put the copy: an empty place (path or URL)")
      ->required();
  cmd->add_option("--threads", command->threads,
                  "Objects read and written at once")
      ->check(WholeNumberIn(1, 256))
      ->capture_default_str();
  cmd->footer(
      "Copies the last commit (metadata, chunk indexes, chunks; not orphans "
      "or the write lock) without decoding samples, checking every object on "
      "the way (checksums of metadata, indexes, chunk headers and blocks). "
      "HEAD is written last, so the copy opens only once it is whole. Run "
      "the same command again after a failure or a kill: what is already "
      "there is kept. s3:// settings: see README.\n\n"
      "Examples:\n  shoal copy /data/inet s3://bucket/inet\n"
      "  shoal copy s3://bucket/inet /scratch/inet --threads 32");
  cmd->callback(
      [command, run] { *run = [command] { return RunCopy(*command); }; });
}

}  // namespace shoal::tools
