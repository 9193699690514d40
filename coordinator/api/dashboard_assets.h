#pragma once

// The dashboard's static files (coordinator/api/dashboard/), compiled into
// treatyd at build time by treaty_embed_files (cmake/EmbedFiles.cmake).

#include <string_view>

namespace treaty {

struct DashboardAsset {
  std::string_view name;          // file name, e.g. "index.html"
  std::string_view content_type;  // e.g. "text/html; charset=utf-8"
  std::string_view body;
};

// The asset called `name`, or nullptr. The result lives for the whole program.
const DashboardAsset* FindDashboardAsset(std::string_view name);

}  // namespace treaty
