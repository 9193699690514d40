#pragma once

// SqlTx: the participant's own PostgreSQL transaction, handed to business
// code by Barrier::Run and PgResourceManager. It wraps a libpqxx transaction
// without exposing libpqxx: statements take text parameters ($1, $2, ...)
// and return rows of text.
//
// A SqlTx is valid only during the callback it is passed to; it is not
// thread-safe. After a failed statement PostgreSQL aborts the transaction:
// return the failure from the callback (the SDK rolls back).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

// One result row; columns by index. NULL reads as std::nullopt.
class SqlRow {
 public:
  explicit SqlRow(std::vector<std::optional<std::string>> cells) : cells_(std::move(cells)) {}
  size_t size() const { return cells_.size(); }
  bool IsNull(size_t i) const { return !cells_.at(i).has_value(); }
  // The text of column i ("" for NULL).
  std::string Text(size_t i) const { return cells_.at(i).value_or(""); }
  // Column i as an integer (0 for NULL). Throws nothing; non-numbers read as 0.
  int64_t Int(size_t i) const;

 private:
  std::vector<std::optional<std::string>> cells_;
};

struct SqlResult {
  std::vector<SqlRow> rows;
  int64_t affected_rows = 0;  // for INSERT/UPDATE/DELETE
};

// A SQL parameter: text, or NULL.
using SqlParam = std::optional<std::string>;

class SqlTx {
 public:
  class Impl;
  explicit SqlTx(Impl* impl) : impl_(impl) {}

  // Runs one statement with $n parameters. Errors: Unavailable for a lost
  // connection, serialization failure, deadlock or lock time-out, server
  // shutdown or overload, a read-only server after fail-over (retrying the
  // whole call may succeed); Conflict for an integrity violation (unique,
  // not null, foreign key, check); Internal otherwise.
  Result<SqlResult> Exec(const std::string& sql, const std::vector<SqlParam>& params = {});

 private:
  Impl* impl_;  // not owned
};

}  // namespace sdk
}  // namespace treaty
