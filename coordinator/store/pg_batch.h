#pragma once

// Set-based group commit for PgLogStore: applies a whole batch of TxnWrites
// with a fixed handful of statements (one INSERT ... SELECT FROM unnest(...)
// or UPDATE ... FROM unnest(...) per table) instead of several round trips
// per write, so a batch of hundreds of writes costs about six round trips.
// Private to treaty_store (includes libpqxx).

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/status.h"
#include "store/records.h"

namespace treaty::pg {

// Whether ApplySetBased can take `writes`: no two writes of one gtid, and no
// update that enlists branches (those need per-write conflict handling).
bool SetBasedEligible(const std::vector<TxnWrite>& writes);

// Applies `writes` inside `tx` and returns one Status per write (OK,
// Conflict for a create of an existing gtid, LostOwnership, NotFound), with
// the same meaning as the per-write path. Returns nullopt when a write turned
// out to need per-write handling (a branch that exists already or is
// missing): the caller must roll `tx` back and use the per-write path.
// Database errors are thrown as libpqxx exceptions.
std::optional<std::vector<Status>> ApplySetBased(pqxx::transaction_base& tx,
                                                 const std::vector<TxnWrite>& writes);

// A PostgreSQL array literal ("{...}") built element by element.
class ArrayLiteral {
 public:
  void Add(const std::string& s);
  void Add(const std::optional<std::string>& s);
  void Add(int64_t v);
  void Add(const std::optional<int64_t>& v);
  void Add(bool v);
  void Add(const std::optional<bool>& v);
  void AddNull();
  std::string str() const { return "{" + text_ + "}"; }
  size_t size() const { return n_; }

 private:
  void Sep();
  std::string text_;
  size_t n_ = 0;
};

}  // namespace treaty::pg
