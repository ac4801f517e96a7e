# What makes the daemon a system service once installed: its configuration
# (deploy/salam.toml as etc/salam/salam.toml), the systemd units, the
# sysusers.d entry that creates its user, and a logrotate file.
#
# The directories depend on the prefix given at install time (`cmake
# --install --prefix`), as salam.pc's does, so they are chosen then, by
# install_system_files.cmake. A prefix of /usr installs where Debian puts
# them: /etc, systemd's unit directory (SALAM_SYSTEMD_UNIT_DIR, by default
# systemd.pc's systemdsystemunitdir: /lib/systemd/system on Debian 12) and
# /usr/lib/sysusers.d. Any other prefix keeps everything inside it
# (PREFIX/etc, PREFIX/lib/systemd/system), so that a trial install into a
# scratch prefix writes nothing outside it. DESTDIR is honoured.
find_package(PkgConfig REQUIRED)
pkg_get_variable(salam_systemd_unit_dir systemd systemdsystemunitdir)
if(NOT salam_systemd_unit_dir)
  set(salam_systemd_unit_dir /lib/systemd/system)
endif()
set(SALAM_SYSTEMD_UNIT_DIR ${salam_systemd_unit_dir}
    CACHE PATH "Where a /usr install puts the systemd units")

install(CODE "
  set(SALAM_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(SALAM_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(SALAM_SYSTEMD_UNIT_DIR \"${SALAM_SYSTEMD_UNIT_DIR}\")
  set(SALAM_INSTALL_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  set(SALAM_INSTALL_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
")
install(SCRIPT ${CMAKE_CURRENT_LIST_DIR}/install_system_files.cmake)
