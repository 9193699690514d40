# Installation and Debian packages (docs/install.md).
#
#   cmake --install build [--prefix DIR]   treatyd, treatyctl, the shared libtreaty,
#                                          its headers, CMake package and pkg-config file
#   cpack --config build/CPackConfig.cmake -G DEB
#                                          treatyd_VERSION-1_ARCH.deb and
#                                          libtreaty-dev_VERSION-1_ARCH.deb
#
# Components: `server` (treatyd, treatyctl, the systemd unit, the sample
# configuration) and `sdk` (libtreaty.so*, include/treaty/, lib/cmake/Treaty/,
# lib/pkgconfig/treaty.pc); `cmake --install build --component sdk` installs one.
# Neither installing nor packaging builds anything: build first.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# --- The shared libtreaty -------------------------------------------------
# The in-tree static target `treaty` (which the tests link, SDK internals
# included) whole, plus the parts of the internal static libraries it uses
# (the base library treaty_base: treaty_common, treaty_security, treaty_http,
# treaty_pg, treaty_thrift_server; and treaty_thrift_gen), in one
# libtreaty.so.0 that needs only system libraries. The version script
# exports the SDK's public API (namespace treaty::sdk, and the base
# library's treaty::Status) and nothing else.
if(TARGET treaty)
  set(TREATY_SDK_VERSION_SCRIPT ${PROJECT_SOURCE_DIR}/participant-sdk/treaty.map)
  add_library(treaty_shared SHARED ${TREATY_SDK_VERSION_SCRIPT})
  target_link_libraries(treaty_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,treaty>")
  target_link_options(treaty_shared PRIVATE "LINKER:--version-script=${TREATY_SDK_VERSION_SCRIPT}"
                      "LINKER:--no-undefined")
  target_include_directories(treaty_shared INTERFACE
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/participant-sdk/include>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/coordinator/common/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(treaty_shared INTERFACE cxx_std_17)
  set_target_properties(treaty_shared PROPERTIES
    OUTPUT_NAME treaty
    EXPORT_NAME treaty
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    LINKER_LANGUAGE CXX
    LINK_DEPENDS ${TREATY_SDK_VERSION_SCRIPT})

  install(TARGETS treaty_shared EXPORT TreatyTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk NAMELINK_COMPONENT sdk)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/participant-sdk/include/treaty
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT sdk
    FILES_MATCHING PATTERN "*.h")
  # treaty/status.h: the base library's Status, which the SDK's API returns.
  install(FILES ${PROJECT_SOURCE_DIR}/coordinator/common/include/treaty/status.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/treaty COMPONENT sdk)

  # find_package(Treaty) -> Treaty::treaty
  set(TREATY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Treaty)
  install(EXPORT TreatyTargets NAMESPACE Treaty:: DESTINATION ${TREATY_CMAKE_DIR}
    COMPONENT sdk)
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/TreatyConfig.cmake.in
    ${PROJECT_BINARY_DIR}/TreatyConfig.cmake INSTALL_DESTINATION ${TREATY_CMAKE_DIR}
    PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
  # The ABI is promised per major version (the SONAME libtreaty.so.MAJOR).
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/TreatyConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/TreatyConfig.cmake
    ${PROJECT_BINARY_DIR}/TreatyConfigVersion.cmake
    DESTINATION ${TREATY_CMAKE_DIR} COMPONENT sdk)

  # treaty.pc names the prefix it is installed under, known only at install
  # time (`cmake --install --prefix`, DESTDIR, CPack): it is configured then.
  set(TREATY_PC_PREFIX "@TREATY_PC_PREFIX@")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/treaty.pc.in ${PROJECT_BINARY_DIR}/treaty.pc.in @ONLY)
  install(CODE "
    set(TREATY_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    set(dir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\")
    set(draft \"\$ENV{DESTDIR}\${dir}/treaty.pc.draft\")
    configure_file(\"${PROJECT_BINARY_DIR}/treaty.pc.in\" \"\${draft}\" @ONLY)
    file(INSTALL \"\${draft}\" DESTINATION \"\${dir}\" RENAME treaty.pc)
    file(REMOVE \"\${draft}\")
  " COMPONENT sdk)
endif()

# --- treatyd, treatyctl, systemd unit and user, sample configuration ------
foreach(program treatyd treatyctl)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
  endif()
endforeach()

# Each installed when present (globbed, so that adding one re-runs CMake).
file(GLOB TREATY_UNIT_FILE CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/deploy/systemd/treatyd.service)
file(GLOB TREATY_CONFIG_FILE CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/deploy/config/treatyd.conf)
file(GLOB TREATY_SYSUSERS_FILE CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/deploy/systemd/treaty.sysusers)
if(TREATY_UNIT_FILE)
  install(FILES ${TREATY_UNIT_FILE} DESTINATION lib/systemd/system COMPONENT server)
endif()
if(TREATY_SYSUSERS_FILE)
  install(FILES ${TREATY_SYSUSERS_FILE} DESTINATION lib/sysusers.d RENAME treaty.conf
          COMPONENT server)
endif()

# The configuration goes to /etc/treaty when the prefix is /usr (as the .deb
# installs it), else to PREFIX/etc/treaty. An existing file is kept: it is
# the administrator's (the .deb marks it a conffile).
if(TREATY_CONFIG_FILE)
  install(CODE "
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
      set(etc \"/etc/treaty\")
    else()
      set(etc \"\${CMAKE_INSTALL_PREFIX}/etc/treaty\")
    endif()
    if(EXISTS \"\$ENV{DESTDIR}\${etc}/treatyd.conf\")
      message(STATUS \"Keeping: \$ENV{DESTDIR}\${etc}/treatyd.conf\")
    else()
      file(INSTALL \"${TREATY_CONFIG_FILE}\" DESTINATION \"\${etc}\"
           PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    endif()
  " COMPONENT server)
endif()

# --- Debian packages --------------------------------------------------------
set(TREATY_PACKAGE_MAINTAINER "Treaty maintainers <treaty-maintainers@example.org>"
    CACHE STRING "Maintainer field of the .deb packages")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME treaty)
set(CPACK_PACKAGE_VENDOR "Treaty")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${TREATY_PACKAGE_MAINTAINER})
# Files under /etc are installed with absolute paths: CPack must stage with
# DESTDIR (the prefix stays /usr while installing).
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server sdk)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${TREATY_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends on the shared libraries the binaries need, from dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A `shlibs` control file for each shared library packaged (libtreaty.so.0),
# so that packages built against it depend on libtreaty-dev.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME treatyd)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_SUGGESTS "postgresql")
# Descriptions: a summary line, then the long description (CPack indents
# it as the control file wants, " ." for an empty line).
set(CPACK_DEBIAN_SERVER_DESCRIPTION
  "Treaty distributed transaction coordinator
treatyd coordinates sagas and two-phase commit (2PC, TCC) across services.
Coordinators are stateless over a durable log (SQLite or PostgreSQL), so any
number of them may run side by side and take over each other's work.

This package holds treatyd, the treatyctl command-line client, a systemd
unit and a sample configuration (/etc/treaty/treatyd.conf). It creates the
system user treaty, which the unit runs treatyd as.")
# postinst (the `treaty` user and /var/lib/treaty) and, when the package
# has the sample configuration, a conffiles list naming it.
set(TREATY_DEB_CONTROL ${PROJECT_SOURCE_DIR}/cmake/deb/treatyd/postinst)
if(TREATY_CONFIG_FILE)
  file(WRITE ${PROJECT_BINARY_DIR}/deb/treatyd/conffiles "/etc/treaty/treatyd.conf\n")
  list(APPEND TREATY_DEB_CONTROL ${PROJECT_BINARY_DIR}/deb/treatyd/conffiles)
endif()
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA ${TREATY_DEB_CONTROL})
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME libtreaty-dev)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SDK_DESCRIPTION
  "Treaty participant SDK (libtreaty)
The C++ SDK for services taking part in Treaty transactions: saga steps and
two-phase commit resource managers served over HTTP or Thrift, the
exactly-once barrier and PostgreSQL resource manager, and the client that
submits sagas and drives 2PC transactions.

This package holds the shared library libtreaty.so.${PROJECT_VERSION_MAJOR}, its headers
(treaty/), the CMake package (find_package(Treaty): Treaty::treaty) and the
pkg-config file (treaty.pc).")

include(CPack)
