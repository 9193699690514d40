#pragma once

// The store URI of --store, checked without opening the store. OpenLogStore
// (log_store.h) runs the same check first, so `treatyd --check-config` and
// a real start refuse the same URIs with the same InvalidArgument.

#include <string>

#include "treaty/status.h"

namespace treaty {

// Ok when `uri` names a store OpenLogStore would try to open:
//   sqlite:PATH (or sqlite://PATH), PATH not empty;
//   a PostgreSQL URI (postgresql://..., postgres://...) or a key=value
//   conninfo ("host=db1 dbname=treaty"), read with libpq's own parser
//   (PQconninfoParse): an unknown option or a malformed URI is refused, and
//   so are the values libpq would only refuse when connecting: a port that
//   is not 1..65535 (or more ports than hosts), a timeout or keepalive
//   setting that is not an integer, an sslmode, gssencmode,
//   channel_binding, target_session_attrs or ssl_*_protocol_version it does
//   not know.
// Otherwise InvalidArgument saying what is wrong; the message never quotes
// a password (text of the URI is shown only as a libpq keyword or an
// escaped, bounded option value that is not a password). Opens no file and
// no connection; thread-safe.
[[nodiscard]] Status CheckStoreUri(const std::string& uri);

// Whether `uri` names a PostgreSQL log (postgresql://, postgres:// or a
// key=value conninfo), as OpenLogStore tells; SQLite URIs are
// SqliteLogPathOf's (store/sqlite_backup.h). No I/O; thread-safe.
bool IsPostgresStoreUri(const std::string& uri);

}  // namespace treaty
