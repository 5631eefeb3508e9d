// CopyDataset on the pipeline core (see copy.h).
#include "loader/copy.h"

#include <algorithm>

#include "format/dataset.h"
#include "loader/pipeline.h"

namespace shoal {
namespace {

// One object on its way.
struct CopyItem {
  size_t index = 0;
  Buffer bytes;
  bool kept = false;  // already at the destination, whole
};

// What an object costs in flight before it is read: its size when the plan
// knows it, else a metadata object's or an index's typical size.
constexpr uint64_t kUnknownObjectBytes = 1 << 20;

}  // namespace

Result<CopyReport> CopyDataset(const Store& src, Store& dst,
                               const CopyOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(CopyPlan plan, CopyPlan::Make(src, dst));
  CopyReport report;
  report.commit = plan.commit();
  report.objects = plan.size() + 1;  // and the commit
  // The I/O stages wait on the stores on threads of their own (blocking
  // stages), so the task arena holds only the checks, a thread a core (idle
  // arena workers spin before they sleep, on the checks' cores).
  const int cores = ResolveThreads(0);
  const int io = std::clamp(options.threads, 1,
                            std::max(1, (kMaxPipelineThreads - cores) / 2));
  const StageOptions read_stage{
      .name = "read", .concurrency = io, .blocking = true};
  const StageOptions write_stage{
      .name = "write", .concurrency = io, .blocking = true};
  PipelineOptions po;
  po.threads = cores;
  po.budget_bytes = options.memory_budget;
  po.max_in_flight = 2 * io + cores;
  Pipeline<CopyItem> pipeline(po);
  SHOAL_RETURN_IF_ERROR(
      pipeline.AddStage(read_stage, [&](CopyItem& item) -> Status {
        // A chunk already there with the size its index records was written
        // whole by an earlier run: kept without reading it again.
        const std::string& key = plan.key(item.index);
        const uint64_t known = plan.known_bytes(item.index);
        if (known != 0) {
          auto there = dst.Size(key);
          if (there.ok() && *there == known) {
            item.kept = true;
            return Status::OK();
          }
        }
        auto bytes = src.Read(key);
        if (!bytes.ok()) return bytes.status().WithContext(src.url());
        item.bytes = std::move(*bytes);
        return Status::OK();
      }));
  SHOAL_RETURN_IF_ERROR(pipeline.AddStage(
      {.name = "check", .concurrency = cores}, [&](CopyItem& item) -> Status {
        if (item.kept) return Status::OK();
        return plan.Check(item.index, item.bytes).WithContext(src.url());
      }));
  SHOAL_RETURN_IF_ERROR(
      pipeline.AddStage(write_stage, [&](CopyItem& item) -> Status {
        if (item.kept) return Status::OK();
        const std::string& key = plan.key(item.index);
        // Already there, whole (stores write objects whole): kept.
        auto there = dst.Size(key);
        if (there.ok() && *there == item.bytes.size()) {
          item.kept = true;
          return Status::OK();
        }
        return dst.Write(key, item.bytes.span());
      }));
  SHOAL_RETURN_IF_ERROR(pipeline.Start(
      [&](uint64_t seq, CopyItem& item, uint64_t* cost) -> Result<bool> {
        if (seq >= plan.size()) return false;
        item.index = seq;
        item.bytes = Buffer();
        item.kept = false;
        const uint64_t known = plan.known_bytes(seq);
        *cost = known != 0 ? known : kUnknownObjectBytes;
        return true;
      }));
  CopyProgress progress{0, report.objects, 0};
  while (true) {
    auto next = pipeline.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    const CopyItem& item = ***next;
    if (item.kept) {
      ++report.kept;
    } else {
      ++report.copied;
      report.bytes += item.bytes.size();
    }
    ++progress.objects_done;
    progress.bytes_copied = report.bytes;
    if (options.progress) options.progress(progress);
  }
  SHOAL_RETURN_IF_ERROR(plan.Finish(dst, &report));
  ++progress.objects_done;
  progress.bytes_copied = report.bytes;
  if (options.progress) options.progress(progress);
  return report;
}

Result<CopyReport> CopyDataset(std::string_view src, std::string_view dst,
                               const CopyOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto from, OpenStore(src, {.create = false}));
  // Before the store, which makes the folder.
  SHOAL_RETURN_IF_ERROR(NotInsideADataset(std::string(dst)));
  SHOAL_ASSIGN_OR_RETURN(auto to, OpenStore(dst, {.create = true}));
  return CopyDataset(*from, *to, options);
}

}  // namespace shoal
