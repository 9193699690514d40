# The SQLite log's file system full, read-only and back (mounts a tmpfs,
# skipped unless root), and a log migrated by a newer release refused on
# both engines. Both run treatyd as a child process.
treaty_add_test(sqlite_file_system_test
  SOURCES sqlite_file_system_test.cc
  LIBS treaty_http treaty_test_support
  TIMEOUT 180)
add_dependencies(sqlite_file_system_test treatyd)

treaty_add_test(schema_version_test
  SOURCES schema_version_test.cc
  LIBS treaty_store treaty_test_support PkgConfig::SQLITE3
  TIMEOUT 180)
add_dependencies(schema_version_test treatyd)
