# The PostgreSQL log stalls (a synchronous standby that never answers, the
# server SIGSTOPped) or turns read-only under a running coordinator
# (docs/operations.md "What happens when ...", store-stall).
# Each test runs its own MiniPostgres: the faults never reach other tests.
treaty_add_test(store_stall_test
  SOURCES store_stall_test.cc
  LIBS treaty_api treaty_http treaty_test_support
  TIMEOUT 240)
treaty_add_test(store_stall_readiness_test
  SOURCES store_stall_readiness_test.cc
  LIBS treaty_api treaty_http treaty_test_support
  TIMEOUT 180)
# A create whose COMMIT answer was lost is resumed without a re-submission:
# TxnService + LogWriter over real SQLite / PostgreSQL.
treaty_add_test(store_stall_lost_answer_test
  SOURCES store_stall_lost_answer_test.cc
  LIBS treaty_api treaty_http treaty_test_support
  TIMEOUT 120)
