// The metrics in Prometheus's text exposition format 0.0.4, or in
// OpenMetrics 1.0.0 (for scrapers that ask for it). Every series of every
// listener is written from the start, at 0; labels are bounded: the
// listener's address and service from the configuration, a close reason
// from the closed enum, a shard index.
#pragma once

#include <string>
#include <string_view>

#include "../status.hpp"

namespace salam::daemon {

inline constexpr std::string_view kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

// Whether an Accept header asks for OpenMetrics.
bool wants_openmetrics(std::string_view accept) noexcept;

std::string render_metrics(const StatusSnapshot& status, bool openmetrics);

}  // namespace salam::daemon
