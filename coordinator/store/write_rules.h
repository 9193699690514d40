#pragma once

// The storable-write rules: what every LogStore engine can hold, checked in
// ONE place (LogStore::ApplyBatch) before any engine sees a write, so both
// engines store the same thing and one bad write never reaches a batch.
//
//  - Free text (a transaction's or branch's last_error, an event's detail) is
//    never refused: it is made valid UTF-8 without NUL (ToValidUtf8) and cut
//    on a code-point boundary to kMaxStoredTextBytes (Excerpt).
//  - Every other text of a write (gtid, owner, kind, state, spec, branch
//    names, states and specs, event branch and type) must be valid UTF-8
//    without NUL. libpq hands text parameters over as C strings, so a NUL
//    would silently cut the value (a step "a\0b" stored as "a"); PostgreSQL
//    refuses ill-formed UTF-8 and SQLite would store it for readers to choke
//    on. Such a write is refused as a data error (below).
//
// A data error is reported as InvalidArgument whose message starts with
// "data error": the write is wrong in itself, retrying it cannot help, and
// it fails alone (the rest of its batch still applies). Engines report the
// database's own refusals of a write's data (PostgreSQL SQLSTATE classes 22,
// 23 other than unique violations, 54; SQLite TOOBIG, MISMATCH, constraints
// other than primary key / unique) the same way.
//
// Stateless, thread-safe, never throw.

#include <cstddef>
#include <string>
#include <string_view>

#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

// Most bytes of one free-text value (last_error, event detail) kept in the log.
inline constexpr size_t kMaxStoredTextBytes = 16 * 1024;

// True when `s` is a data error (see above).
bool IsDataError(const Status& s);
// A data error about `what` (never echoes offending bytes: say which field).
Status DataError(const std::string& what);

// OK when every non-free text of `w` can be stored; otherwise a data error
// naming the field.
Status CheckStorable(const TxnWrite& w);

// True when the free text of `w` is stored as is (FixFreeText changes nothing).
bool FreeTextIsStorable(const TxnWrite& w);
// Applies the free-text rule to every last_error and detail of `w`.
void FixFreeText(TxnWrite* w);

// The free-text rule for one value.
std::string StorableText(std::string_view text);

}  // namespace treaty
