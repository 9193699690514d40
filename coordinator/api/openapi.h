#pragma once

// The OpenAPI 3.1 description of the coordinator's HTTP API
// (docs/openapi.json; docs/api.md is its prose), compiled into treatyd at
// build time by treaty_embed_files (cmake/EmbedFiles.cmake) and served by
// OpsRoutes at GET /v1/openapi.json (read role, as the other reads).

#include <string_view>

namespace treaty {

// The document's JSON text, exactly as in docs/openapi.json. It lives for
// the whole program; thread-safe.
std::string_view OpenApiDocument();

}  // namespace treaty
