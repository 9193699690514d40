#pragma once

// NewUuid: the one generator of random identifiers (gtids the coordinator
// picks, coordinator ids). Boost.Uuid's random generator reads the
// operating system's random source (getrandom), so ids of coordinators that
// start at the same moment do not collide.
//
// Identifiers only: secrets (session ids, tokens) use RAND_bytes, never this.
//
// Thread-safe (one generator per thread); never blocks once the kernel's
// random pool is initialized.

#include <string>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>

namespace treaty {

// A fresh random UUID (version 4) as 36 characters of lower-case text,
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
inline std::string NewUuid() {
  thread_local boost::uuids::random_generator generate;
  return boost::uuids::to_string(generate());
}

// A gtid for a submission that named none: a NewUuid().
inline std::string NewGtid() { return NewUuid(); }

}  // namespace treaty
