# Retention and per-endpoint state: the purge keeps
# up with a backlog on a real SQLite file and a real PostgreSQL without
# blocking writers; idle participant endpoints are forgotten.
treaty_add_test(retention_purge_test
  SOURCES retention_purge_test.cc
  LIBS treaty_api treaty_test_support PkgConfig::PQXX pq PkgConfig::SQLITE3
  TIMEOUT 600)
treaty_add_test(endpoint_prune_test
  SOURCES endpoint_prune_test.cc
  LIBS treaty_http treaty_thrift treaty_test_support
  TIMEOUT 120)
