// Fuzzes the daemon's configuration file: any text must give either a
// configuration or a ConfigError, never a crash, a hang or another
// exception.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config.hpp"
#include "config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace salam::daemon;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  DaemonConfig config;
  try {
    apply_config_text(config, text, "fuzz.toml");
    finish(config);
  } catch (const ConfigError&) {
    // Rejected with a message: what bad input must get.
  }
  return 0;
}
