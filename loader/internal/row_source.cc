// The rows source (loader/source.h): a program's own rows, filled by a
// callback on the planning thread.
#include "loader/source.h"

namespace shoal {
namespace {

// A program's own rows, from a callback on the planning thread.
class RowSource : public Source {
 public:
  RowSource(std::string name, std::vector<TensorSpec> tensors, RowFill fill,
            std::optional<uint64_t> num_records)
      : name_(std::move(name)),
        tensors_(std::move(tensors)),
        fill_(std::move(fill)),
        num_records_(num_records) {}

  std::string name() const override { return name_; }
  Result<SourceScan> Scan(bool) override {
    SourceScan scan;
    scan.tensors = tensors_;
    scan.num_records = num_records_;
    return scan;
  }
  Result<bool> Plan(uint64_t index, Record& record) override {
    record.columns.resize(tensors_.size());
    SHOAL_ASSIGN_OR_RETURN(bool more, fill_(index, record));
    if (more && record.name.empty()) record.name = "row " + std::to_string(index);
    return more;
  }
  Status Read(const Record&, MutableByteSpan) const override {
    return Status::OK();
  }
  Status Prepare(Record&, const Buffer&) const override { return Status::OK(); }

 private:
  std::string name_;
  std::vector<TensorSpec> tensors_;
  RowFill fill_;
  std::optional<uint64_t> num_records_;
};

}  // namespace

std::unique_ptr<Source> MakeRowSource(std::string name,
                                      std::vector<TensorSpec> tensors,
                                      RowFill fill,
                                      std::optional<uint64_t> num_records) {
  return std::make_unique<RowSource>(std::move(name), std::move(tensors),
                                     std::move(fill), num_records);
}

}  // namespace shoal
