# Install rules: libsalam with its headers, a CMake package (salam::salam)
# and a pkg-config file; the daemon and salam-bench. Honours
# CMAKE_INSTALL_PREFIX (or `cmake --install --prefix`), DESTDIR and
# BUILD_SHARED_LIBS; with the daemon, its configuration, units and logrotate
# file (install_system.cmake). Tests, fuzzers, benchmarks and examples are
# not installed.
include(CMakePackageConfigHelpers)

set(salam_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/salam)

install(TARGETS salam EXPORT salamTargets INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The whole directory, so that a header added later is installed too.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/salam DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT salamTargets NAMESPACE salam:: DESTINATION ${salam_cmake_dir})
get_target_property(salam_type salam TYPE)
if(salam_type STREQUAL "STATIC_LIBRARY")
  set(SALAM_STATIC TRUE)
else()
  set(SALAM_STATIC FALSE)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/salamConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/salamConfig.cmake
                              INSTALL_DESTINATION ${salam_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/salamConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/salamConfig.cmake ${PROJECT_BINARY_DIR}/salamConfigVersion.cmake
        DESTINATION ${salam_cmake_dir})

# salam.pc names the prefix it is installed under, which `cmake --install
# --prefix` may change after configuration: the prefix is filled in at
# install time (the configure-time pass leaves @SALAM_PC_PREFIX@ as it is).
set(SALAM_PC_PREFIX "@SALAM_PC_PREFIX@")
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(SALAM_PC_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(SALAM_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/salam.pc.in ${PROJECT_BINARY_DIR}/salam.pc.in @ONLY)
install(CODE "
  set(SALAM_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/salam.pc.in\" \"${PROJECT_BINARY_DIR}/salam.pc\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/salam.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The daemon is a system service: sbin, as Debian policy has it.
if(TARGET salam_bin)
  install(TARGETS salam_bin RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
  include(${CMAKE_CURRENT_LIST_DIR}/install_system.cmake)
endif()
if(TARGET salam-bench)
  install(TARGETS salam-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
