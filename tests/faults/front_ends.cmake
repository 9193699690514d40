# Bounded front ends (a thousand idle sockets, a
# descriptor limit, idle and request time-outs, connection caps) and Thrift
# calls that wait without starving others. Real treatyd child processes.
treaty_add_test(front_ends_sockets_test
  SOURCES front_ends_sockets_test.cc
  LIBS treaty_thrift_wire treaty_test_support treaty_thrift_gen treaty_http treaty_common
  LABELS faults
  TIMEOUT 180)
add_dependencies(front_ends_sockets_test treatyd)

treaty_add_test(thrift_starvation_test
  SOURCES thrift_starvation_test.cc
  LIBS treaty_thrift_wire treaty_test_support treaty_thrift_gen treaty_common
  LABELS faults
  TIMEOUT 120)
add_dependencies(thrift_starvation_test treatyd)

treaty_add_test(front_ends_log_throttle_test
  SOURCES front_ends_log_throttle_test.cc
  LIBS treaty_common
  LABELS faults
  TIMEOUT 30)
