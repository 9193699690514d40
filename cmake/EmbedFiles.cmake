# treaty_embed_files: compiles files of the source tree into a generated C++
# source, so a binary needs no file path at run time. Used for the
# dashboard's assets and the OpenAPI document (coordinator/api), the
# coordinator's SQL migrations (coordinator/store) and the SDK's
# (participant-sdk).
#
#   include(${PROJECT_SOURCE_DIR}/cmake/EmbedFiles.cmake)
#   treaty_embed_files(
#     OUTPUT    <generated .cc>   add it to a target's sources
#     TEMPLATE  <.cc.in>          the C++ around the files, configured with
#                                 @ONLY: @TREATY_EMBEDDED@ becomes the files'
#                                 entries (@TREATY_EMBEDDED_<group>@ with GROUPS)
#     DIRECTORY <dir>             where the files are
#     GLOB      <pattern>         which files of <dir> (of <dir>/<group> with GROUPS)
#     [GROUPS   <group>...]       sub-directories embedded as separate lists
#     NAMES     migration|asset   what a file name must be, and the placeholders
#                                 it gives (a wrong name fails the build):
#                                   migration  NNNN_stem.sql: @VERSION@ (NNNN as
#                                              a decimal number), @STEM@
#                                   asset      *.html, *.css, *.js, *.svg or *.json:
#                                              @MIME@ (its Content-Type)
#     ENTRY     <C++>             one file's entry; besides the above, @FILE@
#                                 (its name) and @TEXT@ (its contents as a raw
#                                 string literal; a file holding the literal's
#                                 closing delimiter fails the build)
#     COMMENT   <text>)
#
# Entries come in natural order of the file names (NNNN order for
# migrations), one a line. The output is regenerated when an embedded file
# changes, when one is added or removed (the glob is CONFIGURE_DEPENDS), and
# when the template, the ENTRY or this file changes; it is rewritten only if
# its text differs.

# Script mode: `cmake -DTREATY_EMBED_CONFIG=<file> -P EmbedFiles.cmake`, run
# by the custom command treaty_embed_files adds.
if(CMAKE_SCRIPT_MODE_FILE AND DEFINED TREATY_EMBED_CONFIG)
  include(${TREATY_EMBED_CONFIG})
  set(delimiter "treaty_embed")
  foreach(group IN LISTS EMBED_GROUPS)
    if(group STREQUAL ".")  # no GROUPS: the directory itself
      set(dir ${EMBED_DIRECTORY})
      set(placeholder TREATY_EMBEDDED)
    else()
      set(dir ${EMBED_DIRECTORY}/${group})
      set(placeholder TREATY_EMBEDDED_${group})
    endif()
    set(entries "")
    foreach(file IN LISTS EMBED_FILES_${group})
      set(shown "${group}/${file}")
      string(REGEX REPLACE "^\\./" "" shown "${shown}")
      set(entry "${EMBED_ENTRY}")
      if(EMBED_NAMES STREQUAL "migration")
        if(NOT file MATCHES "^([0-9]+)_([A-Za-z0-9_]+)\\.sql$")
          message(FATAL_ERROR "migration file name must be NNNN_name.sql: ${shown}")
        endif()
        math(EXPR version "${CMAKE_MATCH_1}")
        set(stem "${CMAKE_MATCH_2}")
        string(REPLACE "@VERSION@" "${version}" entry "${entry}")
        string(REPLACE "@STEM@" "${stem}" entry "${entry}")
      elseif(EMBED_NAMES STREQUAL "asset")
        if(file MATCHES "\\.html$")
          set(mime "text/html; charset=utf-8")
        elseif(file MATCHES "\\.css$")
          set(mime "text/css; charset=utf-8")
        elseif(file MATCHES "\\.js$")
          set(mime "text/javascript; charset=utf-8")
        elseif(file MATCHES "\\.svg$")
          set(mime "image/svg+xml")
        elseif(file MATCHES "\\.json$")
          set(mime "application/json")
        else()
          message(FATAL_ERROR "unsupported file type to embed: ${shown}")
        endif()
        string(REPLACE "@MIME@" "${mime}" entry "${entry}")
      endif()
      string(REPLACE "@FILE@" "${file}" entry "${entry}")
      file(READ ${dir}/${file} text)
      if(text MATCHES "\\)${delimiter}\"")
        message(FATAL_ERROR "${shown} contains the raw-string delimiter )${delimiter}\"")
      endif()
      # Last, so that nothing in a file's text is taken for a placeholder.
      string(REPLACE "@TEXT@" "R\"${delimiter}(${text})${delimiter}\"" entry "${entry}")
      if(entries STREQUAL "")
        set(entries "${entry}")
      else()
        string(APPEND entries "\n${entry}")
      endif()
    endforeach()
    set(${placeholder} "${entries}")
  endforeach()
  configure_file(${EMBED_TEMPLATE} ${EMBED_OUTPUT} @ONLY)
  return()
endif()

include_guard(GLOBAL)

function(treaty_embed_files)
  cmake_parse_arguments(PARSE_ARGV 0 arg ""
    "OUTPUT;TEMPLATE;DIRECTORY;GLOB;NAMES;ENTRY;COMMENT" "GROUPS")
  foreach(required OUTPUT TEMPLATE DIRECTORY GLOB NAMES ENTRY)
    if(NOT DEFINED arg_${required})
      message(FATAL_ERROR "treaty_embed_files: ${required} is required")
    endif()
  endforeach()
  if(NOT arg_NAMES MATCHES "^(migration|asset)$")
    message(FATAL_ERROR "treaty_embed_files: NAMES must be migration or asset")
  endif()
  if(arg_ENTRY MATCHES "]==]")
    message(FATAL_ERROR "treaty_embed_files: ENTRY must not contain ]==]")
  endif()
  if(NOT DEFINED arg_COMMENT)
    set(arg_COMMENT "Embedding ${arg_DIRECTORY}")
  endif()
  if(NOT IS_ABSOLUTE ${arg_TEMPLATE})
    set(arg_TEMPLATE ${CMAKE_CURRENT_SOURCE_DIR}/${arg_TEMPLATE})
  endif()
  set(groups ${arg_GROUPS})
  if(NOT groups)
    set(groups ".")  # the directory itself
  endif()

  get_filename_component(name ${arg_OUTPUT} NAME)
  set(config ${CMAKE_CURRENT_BINARY_DIR}/${name}.embed.cmake)
  set(text "# Written by treaty_embed_files (cmake/EmbedFiles.cmake) for ${name}.\n")
  string(APPEND text "set(EMBED_OUTPUT [==[${arg_OUTPUT}]==])\n")
  string(APPEND text "set(EMBED_TEMPLATE [==[${arg_TEMPLATE}]==])\n")
  string(APPEND text "set(EMBED_DIRECTORY [==[${arg_DIRECTORY}]==])\n")
  string(APPEND text "set(EMBED_NAMES ${arg_NAMES})\n")
  string(APPEND text "set(EMBED_ENTRY [==[${arg_ENTRY}]==])\n")
  string(APPEND text "set(EMBED_GROUPS \"${groups}\")\n")
  set(depends "")
  foreach(group IN LISTS groups)
    if(group STREQUAL ".")
      set(dir ${arg_DIRECTORY})
    else()
      set(dir ${arg_DIRECTORY}/${group})
    endif()
    file(GLOB files CONFIGURE_DEPENDS RELATIVE ${dir} ${dir}/${arg_GLOB})
    list(SORT files COMPARE NATURAL)
    foreach(file IN LISTS files)
      list(APPEND depends ${dir}/${file})
    endforeach()
    string(APPEND text "set(EMBED_FILES_${group} [==[${files}]==])\n")
  endforeach()
  # Rewritten only when it changes, so a re-configure regenerates nothing.
  set(old "")
  if(EXISTS ${config})
    file(READ ${config} old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE ${config} "${text}")
  endif()

  add_custom_command(
    OUTPUT ${arg_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -DTREATY_EMBED_CONFIG=${config} -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE}
    DEPENDS ${depends} ${arg_TEMPLATE} ${config} ${CMAKE_CURRENT_FUNCTION_LIST_FILE}
    COMMENT "${arg_COMMENT}"
    VERBATIM)
endfunction()
