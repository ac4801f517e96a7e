// /status.json: the facts of the metrics, plus each listener's settings,
// the phase and the reload record, for the status page and for scripts.
// The shape is documented in docs/operations.md.
#pragma once

#include <string>

#include "../status.hpp"

namespace salam::daemon {

std::string render_status_json(const StatusSnapshot& status);

}  // namespace salam::daemon
