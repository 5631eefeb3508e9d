# Install rules and package files, so that other projects can use an installed
# shoal through either
#   find_package(shoal REQUIRED) + target_link_libraries(app shoal::shoal)
# or
#   pkg-config --cflags --libs shoal
# Included last by the top-level CMakeLists.txt, when every target exists.
#
# Installed layout (under CMAKE_INSTALL_PREFIX):
#   lib/libshoal_*.so*                 component libraries
#   include/shoal/shoal.h              umbrella header: #include <shoal/shoal.h>
#   include/shoal/<component>/...h     public headers; internal/ folders are
#                                      private and never installed
#   lib/cmake/shoal/                   shoalConfig.cmake, shoalTargets.cmake
#   lib/pkgconfig/shoal.pc
#   bin/shoal                          the CLI, when built
include(CMakePackageConfigHelpers)

# The component libraries, in dependency order (a library after the ones it
# links). Adding a component is adding its target here; its public headers are
# found from the folder that defines the target.
set(SHOAL_INSTALL_TARGETS
  shoal_base
  shoal_codecs
  shoal_format
  shoal_video
  shoal_loader
)

set(SHOAL_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/shoal")

# The public headers need C++20 (std::span, ...): consumers inherit the
# requirement instead of having to know it.
foreach(target IN LISTS SHOAL_INSTALL_TARGETS ITEMS shoal)
  target_compile_features(${target} INTERFACE cxx_std_20)
endforeach()

# Third-party libraries are linked PRIVATE to shared libraries, so the export
# set holds only shoal's own targets and the package config needs no
# find_dependency() for lz4, zstd, xxhash or nlohmann_json.
install(TARGETS ${SHOAL_INSTALL_TARGETS} shoal
  EXPORT shoalTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

# Public headers keep their path from the project root under include/shoal,
# matching the include directories the targets export.
set(header_dirs "")
foreach(target IN LISTS SHOAL_INSTALL_TARGETS)
  get_target_property(dir ${target} SOURCE_DIR)
  list(APPEND header_dirs "${dir}")
endforeach()
list(REMOVE_DUPLICATES header_dirs)
foreach(dir IN LISTS header_dirs)
  file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${dir}")
  install(DIRECTORY "${dir}/"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/shoal/${rel}"
    FILES_MATCHING PATTERN "*.h"
    PATTERN "internal" EXCLUDE)
endforeach()
install(FILES "${PROJECT_SOURCE_DIR}/shoal.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/shoal")

if(TARGET shoal_cli)
  install(TARGETS shoal_cli RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
endif()

# CMake package.
install(EXPORT shoalTargets
  NAMESPACE shoal::
  DESTINATION "${SHOAL_CMAKE_INSTALL_DIR}")
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/shoalConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/shoalConfig.cmake"
  INSTALL_DESTINATION "${SHOAL_CMAKE_INSTALL_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/shoalConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/shoalConfig.cmake"
  "${PROJECT_BINARY_DIR}/shoalConfigVersion.cmake"
  DESTINATION "${SHOAL_CMAKE_INSTALL_DIR}")

# pkg-config file. Paths are relative to the .pc file's own folder
# (${pcfiledir}), so the file stays right for `cmake --install --prefix`
# and for a moved installation, neither of which is known at configure time.
set(pkgconfig_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${pkgconfig_dir}")
  set(SHOAL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH up "/prefix/${pkgconfig_dir}" "/prefix")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(SHOAL_PC_PREFIX "\${pcfiledir}/${up}")
endif()
foreach(var LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${var}}")
    set(SHOAL_PC_${var} "${CMAKE_INSTALL_${var}}")
  else()
    set(SHOAL_PC_${var} "\${prefix}/${CMAKE_INSTALL_${var}}")
  endif()
endforeach()
# Dependents before dependencies, as static-minded linkers expect.
set(SHOAL_PC_LIBS "")
foreach(target IN LISTS SHOAL_INSTALL_TARGETS)
  get_target_property(name ${target} OUTPUT_NAME)
  if(NOT name)
    set(name ${target})
  endif()
  string(PREPEND SHOAL_PC_LIBS " -l${name}")
endforeach()
configure_file("${PROJECT_SOURCE_DIR}/cmake/shoal.pc.in"
  "${PROJECT_BINARY_DIR}/shoal.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/shoal.pc" DESTINATION "${pkgconfig_dir}")
