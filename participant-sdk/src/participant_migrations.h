#pragma once

// The SDK's own schema (migrations/participant/NNNN_name.sql), compiled in.

#include <string>
#include <vector>

namespace treaty {
inline namespace sdk {

struct ParticipantMigration {
  int version = 0;
  std::string name;
  std::string sql;
};

std::vector<ParticipantMigration> ParticipantMigrations();

}  // namespace sdk
}  // namespace treaty
