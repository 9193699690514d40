#pragma once

// Event collapsing (EventRow::collapse, docs/schema.md "History: one event
// per run of retries"), planned in ONE place for every engine and write path.
//
// The rule: an event written with `collapse` set, whose gtid's newest event
// of the same branch has the same type, updates that event (count + its
// count, detail and at_ms replaced, first_at_ms kept) instead of adding a
// row. So a branch retried for hours keeps one event per run of retries.
//
// PlanEvents applies the rule among the events of one write in memory; what
// is left for the engine is, per planned event, "collapse into the newest
// stored event of this gtid and branch if it has the same type, else
// insert". Only the first event of a branch in a write can need the stored
// one (later ones meet an event of this write). Creates never do: a new
// transaction has no stored events (and a create answered Conflict applies
// nothing, so a re-sent create is recognized as before, log_writer.h).
//
// Stateless, thread-safe, no I/O.

#include <cstdint>
#include <vector>

#include "store/records.h"

namespace treaty {

struct PlannedEvent {
  // gtid, branch, type, detail as written; count >= 1; at_ms and
  // first_at_ms resolved from the write (0 only when the write gives no time
  // at all: the engine then uses the database clock for both).
  EventRow row;
  // Collapse into the newest stored event of (gtid, branch) when that has
  // row.type: add row.count to its count, replace its detail and at_ms.
  bool into_stored = false;
};

// The events of `w` in write order, collapsed among themselves (see above).
std::vector<PlannedEvent> PlanEvents(const TxnWrite& w);

}  // namespace treaty
