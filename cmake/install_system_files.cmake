# Run by `cmake --install` (install_system.cmake says why): installs the
# daemon's configuration, units, sysusers.d entry and logrotate file for the
# prefix of this install.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(etc /etc)
  set(units "${SALAM_SYSTEMD_UNIT_DIR}")
else()
  set(etc "${CMAKE_INSTALL_PREFIX}/${SALAM_INSTALL_SYSCONFDIR}")
  set(units "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
if(IS_ABSOLUTE "${SALAM_INSTALL_SBINDIR}")
  set(SALAM_SBINDIR "${SALAM_INSTALL_SBINDIR}")
else()
  set(SALAM_SBINDIR "${CMAKE_INSTALL_PREFIX}/${SALAM_INSTALL_SBINDIR}")
endif()
set(SALAM_SYSCONFDIR "${etc}")

set(deploy "${SALAM_SOURCE_DIR}/deploy")
configure_file("${deploy}/systemd/salam.service.in" "${SALAM_BINARY_DIR}/salam.service" @ONLY)
file(INSTALL DESTINATION "${units}" TYPE FILE
     FILES "${SALAM_BINARY_DIR}/salam.service" "${deploy}/systemd/salam.socket")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" TYPE FILE
     RENAME salam.conf FILES "${deploy}/systemd/salam.sysusers")
file(INSTALL DESTINATION "${etc}/logrotate.d" TYPE FILE FILES "${deploy}/logrotate/salam")

# The configuration is the administrator's once installed: an install over
# an existing one leaves it as it is (a package manager has its own way).
if(EXISTS "$ENV{DESTDIR}${etc}/salam/salam.toml")
  message(STATUS "Kept: $ENV{DESTDIR}${etc}/salam/salam.toml (the shipped one is ${deploy}/salam.toml)")
else()
  file(INSTALL DESTINATION "${etc}/salam" TYPE FILE FILES "${deploy}/salam.toml")
endif()
