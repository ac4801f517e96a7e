// salam-bench: the load generator that measures salam and its peers with
// one and the same client. See docs/benchmarking.md.
//
// Try it:  build/release/examples/hello_server &
//          build/release/apps/salam-bench/salam-bench --duration 2s
#include <cstdio>
#include <exception>

#include <sys/resource.h>

#include "options.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "stats.hpp"

namespace {

// Every connection is a descriptor: take all the process may have.
void raise_descriptor_limit(unsigned wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < wanted + 64) {
    std::fprintf(stderr,
                 "salam-bench: warning: %u connections wanted but only %llu descriptors allowed "
                 "(ulimit -n)\n",
                 wanted, static_cast<unsigned long long>(limit.rlim_cur));
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const auto options = salam::bench::parse_options(argc, argv);
  raise_descriptor_limit(options.concurrency);
  const auto run = salam::bench::run(options);
  const auto summary = salam::bench::summarize(run.stats, run.elapsed, run.server_cpu_seconds,
                                               run.upstream_cpu_seconds);
  const auto text = options.json ? salam::bench::format_json(options, run, summary)
                                 : salam::bench::format_text(options, run, summary);
  std::fputs(text.c_str(), stdout);
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "salam-bench: %s\n", error.what());
  return 1;
}
