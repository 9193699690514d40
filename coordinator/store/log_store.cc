#include "store/log_store.h"

#include "store/write_rules.h"

namespace treaty {

Result<std::vector<Status>> LogStore::ApplyBatch(const std::vector<TxnWrite>& writes) {
  std::vector<Status> results(writes.size());
  bool as_is = true;
  for (size_t i = 0; i < writes.size(); ++i) {
    results[i] = CheckStorable(writes[i]);
    if (!results[i].ok() || !FreeTextIsStorable(writes[i])) as_is = false;
  }
  if (as_is) return ApplyStorable(writes);

  // Hand the engine only the storable writes, with their free text fixed.
  std::vector<TxnWrite> storable;
  std::vector<size_t> positions;
  for (size_t i = 0; i < writes.size(); ++i) {
    if (!results[i].ok()) continue;
    storable.push_back(writes[i]);
    FixFreeText(&storable.back());
    positions.push_back(i);
  }
  if (storable.empty()) return results;
  Result<std::vector<Status>> applied = ApplyStorable(storable);
  if (!applied.ok()) return applied.status();
  if (applied->size() != storable.size()) {
    return Status::Internal("store returned a wrong number of results");
  }
  for (size_t k = 0; k < positions.size(); ++k) results[positions[k]] = std::move((*applied)[k]);
  return results;
}

}  // namespace treaty
