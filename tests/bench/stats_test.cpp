// Statistics of a run: error kinds, the operations invariant, merging and
// the summary's derived figures.
#include "stats.hpp"

#include <cerrno>
#include <chrono>

#include <gtest/gtest.h>

#include <salam/result.hpp>
#include <salam/tls.hpp>

namespace salam::bench {
namespace {

using namespace std::chrono_literals;

TEST(Classify, MapsErrnoToTheReportedKinds) {
  EXPECT_EQ(classify(errno_code(ECONNREFUSED)), ErrorKind::refused);
  EXPECT_EQ(classify(errno_code(ECONNRESET)), ErrorKind::reset);
  EXPECT_EQ(classify(errno_code(EPIPE)), ErrorKind::reset);
  EXPECT_EQ(classify(errno_code(ECONNABORTED)), ErrorKind::reset);
  EXPECT_EQ(classify(timed_out()), ErrorKind::timeout);
  EXPECT_EQ(classify(errno_code(EADDRNOTAVAIL)), ErrorKind::other);
  EXPECT_EQ(classify(errno_code(EMFILE)), ErrorKind::other);
  EXPECT_EQ(classify(cancelled()), ErrorKind::other);
  EXPECT_EQ(classify(std::make_error_code(std::io_errc::stream)), ErrorKind::other);
  EXPECT_EQ(classify(tls::tls_failure()), ErrorKind::tls);
  EXPECT_EQ(classify(end_of_file()), ErrorKind::other);
}

TEST(ErrorKind, NamesMatchTheReport) {
  EXPECT_EQ(to_string(ErrorKind::refused), "refused");
  EXPECT_EQ(to_string(ErrorKind::reset), "reset");
  EXPECT_EQ(to_string(ErrorKind::timeout), "timeout");
  EXPECT_EQ(to_string(ErrorKind::wrong_reply), "wrong_reply");
  EXPECT_EQ(to_string(ErrorKind::tls), "tls");
  EXPECT_EQ(to_string(ErrorKind::other), "other");
}

TEST(Stats, TlsFailuresKeepTheFirstReason) {
  Stats stats;
  stats.record_error(tls::tls_failure(), "wrong version number");
  stats.record_error(tls::tls_failure(), "certificate verify failed");
  stats.record_error(tls::tls_failure());
  EXPECT_EQ(stats.errors_of(ErrorKind::tls), 3u);
  EXPECT_EQ(stats.tls.first_failure, "wrong version number");
  // Not an errno: nothing for strerror() to name.
  stats.record_error(end_of_file());
  EXPECT_EQ(stats.first_other_errno, 0);
}

TEST(Stats, HandshakesAreCountedFullResumedAndOffered) {
  Stats a;
  Stats b;
  b.note_negotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256");
  a.record_handshake(false, false, 900us);
  a.record_handshake(true, true, 300us);
  b.record_handshake(false, true, 800us);  // refused
  b.record_handshake(true, true, 200us);
  a.merge(b);
  EXPECT_EQ(a.tls.full, 2u);
  EXPECT_EQ(a.tls.resumed, 2u);
  EXPECT_EQ(a.tls.offered, 3u);
  EXPECT_EQ(a.tls.handshakes(), 4u);
  EXPECT_EQ(a.tls.version, "TLSv1.3");
  EXPECT_EQ(a.tls.handshake_us.count(), 4u);
  EXPECT_EQ(a.tls.handshake_us.max(), 900u);
  EXPECT_EQ(a.successes, 0u) << "a handshake is not an operation";
  const Summary summary = summarize(a, 1s);
  EXPECT_EQ(summary.tls.handshakes, 4u);
  EXPECT_EQ(summary.tls.offered, 3u);
  EXPECT_EQ(summary.tls.max, 900u);
}

TEST(Stats, OperationsAreSuccessesPlusErrors) {
  Stats stats;
  for (int i = 0; i < 7; ++i)
    stats.record_success(100us);
  stats.record_error(errno_code(ECONNREFUSED));
  stats.record_error(timed_out());
  stats.record_error(ErrorKind::wrong_reply);
  stats.record_error(ErrorKind::wrong_reply);
  EXPECT_EQ(stats.successes, 7u);
  EXPECT_EQ(stats.error_count(), 4u);
  EXPECT_EQ(stats.operations(), 11u);
  EXPECT_EQ(stats.errors_of(ErrorKind::refused), 1u);
  EXPECT_EQ(stats.errors_of(ErrorKind::timeout), 1u);
  EXPECT_EQ(stats.errors_of(ErrorKind::wrong_reply), 2u);
  // Only successes have a latency.
  EXPECT_EQ(stats.latency_us.count(), 7u);
}

TEST(Stats, RemembersTheFirstOtherError) {
  Stats stats;
  stats.record_error(errno_code(ECONNRESET));
  stats.record_error(errno_code(EADDRNOTAVAIL));
  stats.record_error(errno_code(EMFILE));
  EXPECT_EQ(stats.first_other_errno, EADDRNOTAVAIL);
}

TEST(Stats, LatencyIsRecordedInMicroseconds) {
  Stats stats;
  stats.record_success(1500us);
  stats.record_success(999ns);  // rounds down to 0 µs
  EXPECT_EQ(stats.latency_us.max(), 1500u);
  EXPECT_EQ(stats.latency_us.min(), 0u);
}

TEST(Stats, MergeAddsEverything) {
  Stats a;
  Stats b;
  a.record_success(10us);
  a.record_error(ErrorKind::reset);
  a.resets_after_reply = 1;
  a.bytes_sent = 100;
  b.record_success(20us);
  b.record_success(30us);
  b.record_error(errno_code(EMFILE));
  b.bytes_received = 50;
  b.resets_after_reply = 2;
  a.merge(b);
  EXPECT_EQ(a.resets_after_reply, 3u);
  EXPECT_EQ(a.successes, 3u);
  EXPECT_EQ(a.error_count(), 2u);
  EXPECT_EQ(a.operations(), 5u);
  EXPECT_EQ(a.first_other_errno, EMFILE);
  EXPECT_EQ(a.bytes_sent, 100u);
  EXPECT_EQ(a.bytes_received, 50u);
  EXPECT_EQ(a.latency_us.count(), 3u);
  EXPECT_EQ(a.latency_us.max(), 30u);
}

TEST(Summary, DerivesRatesAndServerCpuPerOperation) {
  Stats stats;
  for (int i = 0; i < 900; ++i)
    stats.record_success(100us);
  for (int i = 0; i < 100; ++i)
    stats.record_success(2s);
  stats.record_error(ErrorKind::timeout);
  stats.bytes_sent = 1'000'000;
  stats.bytes_received = 500'000;
  const Summary summary = summarize(stats, 2s, 0.5);
  EXPECT_EQ(summary.operations, 1001u);
  EXPECT_EQ(summary.successes, 1000u);
  EXPECT_EQ(summary.errors, 1u);
  EXPECT_EQ(summary.errors_by_kind[static_cast<std::size_t>(ErrorKind::timeout)], 1u);
  EXPECT_EQ(summary.operations, summary.successes + summary.errors);
  EXPECT_DOUBLE_EQ(summary.elapsed_seconds, 2.0);
  EXPECT_DOUBLE_EQ(summary.rate_per_second, 500.5);
  EXPECT_DOUBLE_EQ(summary.sent_bits_per_second, 4'000'000.0);
  EXPECT_DOUBLE_EQ(summary.received_bits_per_second, 2'000'000.0);
  EXPECT_EQ(summary.p50, 100u);
  EXPECT_EQ(summary.p90, 100u);
  EXPECT_GE(summary.p99, 2'000'000u);
  EXPECT_EQ(summary.max, 2'000'000u);
  EXPECT_EQ(summary.over_1s, 100u);
  EXPECT_EQ(summary.latency_buckets, (std::array<std::uint64_t, 6>{900, 0, 0, 0, 100, 0}));
  ASSERT_TRUE(summary.server_cpu_us_per_operation);
  EXPECT_NEAR(*summary.server_cpu_us_per_operation, 0.5e6 / 1001, 1e-9);
  EXPECT_DOUBLE_EQ(*summary.server_cpu_seconds, 0.5);
  EXPECT_FALSE(summary.upstream_cpu_us_per_operation) << "no --upstream-pid";
}

TEST(Summary, ChargesTheUpstreamApart) {
  Stats stats;
  for (int i = 0; i < 1000; ++i)
    stats.record_success(100us);
  const Summary summary = summarize(stats, 1s, 0.5, 0.25);
  ASSERT_TRUE(summary.upstream_cpu_us_per_operation);
  EXPECT_DOUBLE_EQ(*summary.upstream_cpu_us_per_operation, 250.0);
  EXPECT_DOUBLE_EQ(*summary.server_cpu_us_per_operation, 500.0);
}

TEST(Summary, LatencyBucketsCoverEveryMagnitude) {
  Stats stats;
  for (Duration latency :
       std::initializer_list<Duration>{10us, 999us, 1ms, 50ms, 500ms, 1s, 2999ms, 3s, 60s}) {
    stats.record_success(latency);
  }
  const Summary summary = summarize(stats, 1s);
  // Edges are as exact as the histogram (0.8 %): 2999 ms shares 3 s's bucket.
  EXPECT_EQ(summary.latency_buckets, (std::array<std::uint64_t, 6>{2, 1, 1, 1, 1, 3}));
}

TEST(Summary, WithoutTimeOrOperationsDividesByNothing) {
  const Summary summary = summarize(Stats{}, Duration::zero(), 1.0);
  EXPECT_EQ(summary.operations, 0u);
  EXPECT_EQ(summary.rate_per_second, 0.0);
  EXPECT_FALSE(summary.server_cpu_us_per_operation);
  EXPECT_TRUE(summary.server_cpu_seconds);
  EXPECT_FALSE(summarize(Stats{}, 1s).server_cpu_seconds);
}

}  // namespace
}  // namespace salam::bench
