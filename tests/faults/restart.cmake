# A restart during a retry's backoff (kill -9 + restart on the same log, peer
# takeover, SIGTERM hand-back) keeps the retry budget and the backoff
# (docs/operations.md "What happens when ...", restart).
treaty_add_test(restart_retry_test
  SOURCES restart_retry_test.cc
  LIBS treaty_http treaty_test_support
  TIMEOUT 180)
add_dependencies(restart_retry_test treatyd)
