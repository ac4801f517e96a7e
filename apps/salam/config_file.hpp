// The TOML configuration file. Its keys are the long flags without the
// dashes; listeners are [[listen]] tables. See docs/configuration.md.
#pragma once

#include <string>

#include "config.hpp"

namespace salam::daemon {

// Applies the file at `path` onto `config` (which holds the defaults).
// Throws ConfigError naming FILE:LINE for any mistake: malformed TOML, an
// unknown key, a value of the wrong type or out of range.
void apply_config_file(DaemonConfig& config, const std::string& path);
// The same for TOML text; `name` stands for the file in messages.
void apply_config_text(DaemonConfig& config, std::string_view text, const std::string& name);

}  // namespace salam::daemon
