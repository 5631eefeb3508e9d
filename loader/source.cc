// Sources by kind: the registry's one table, and MakeSource.
#include "loader/source.h"

namespace shoal {

template class Registry<SourceKind>;

Result<std::unique_ptr<Source>> MakeSource(const SourceSpec& spec) {
  SHOAL_ASSIGN_OR_RETURN(SourceRegistry::Factory factory,
                         SourceRegistry::Find(spec.kind));
  return factory(spec);
}

}  // namespace shoal
