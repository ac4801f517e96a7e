// The report of a run: a summary for people, or JSON for scripts
// (bench/compare reads it).
#pragma once

#include <string>

#include "options.hpp"
#include "runner.hpp"
#include "stats.hpp"

namespace salam::bench {

std::string format_text(const Options& options, const RunResult& run, const Summary& summary);
std::string format_json(const Options& options, const RunResult& run, const Summary& summary);

}  // namespace salam::bench
