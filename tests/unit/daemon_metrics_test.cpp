// The daemon's counters and what the admin endpoint renders of them.
#include <string>

#include <gtest/gtest.h>

#include "admin/exposition.hpp"
#include "admin/status_json.hpp"
#include "metrics.hpp"

namespace salam::daemon {
namespace {

TEST(Metrics, TotalsSumTheShardsAndActiveIsWhatHasNotEnded) {
  ListenerMetrics metrics(3);
  for (unsigned s = 0; s < 3; ++s) {
    for (unsigned i = 0; i <= s; ++i)
      metrics.shard(s).accepted.add();
  }
  metrics.shard(1).count_end(CloseReason::done, false, 10, 20, 0.0002);
  metrics.shard(2).count_end(CloseReason::denied, true, 0, 0, 0.002);
  const ListenerTotals totals = metrics.totals();
  EXPECT_EQ(totals.accepted, 6u);
  EXPECT_EQ(totals.active, 4u);
  EXPECT_EQ(totals.accepted_per_shard, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(totals.closed[static_cast<int>(CloseReason::done)], 1u);
  EXPECT_EQ(totals.closed[static_cast<int>(CloseReason::denied)], 1u);
  EXPECT_EQ(totals.refused[static_cast<int>(CloseReason::denied)], 1u);
  EXPECT_EQ(totals.refused[static_cast<int>(CloseReason::done)], 0u);
  EXPECT_EQ(totals.bytes_received, 10u);
  EXPECT_EQ(totals.bytes_sent, 20u);
  EXPECT_EQ(totals.duration[0], 1u);  // 0.2 ms: the first bucket (0.5 ms)
  EXPECT_EQ(totals.duration[2], 1u);  // 2 ms: the 5 ms bucket
  EXPECT_NEAR(totals.duration_seconds, 0.0022, 1e-6);
}

TEST(Metrics, ADurationOnABoundIsInThatBucketAndBeyondTheLastInInf) {
  ListenerMetrics metrics(1);
  metrics.shard(0).count_end(CloseReason::done, false, 0, 0, kDurationBuckets[3]);
  metrics.shard(0).count_end(CloseReason::done, false, 0, 0, kDurationBuckets.back() * 2);
  const ListenerTotals totals = metrics.totals();
  EXPECT_EQ(totals.duration[3], 1u);
  EXPECT_EQ(totals.duration.back(), 1u);
}

StatusSnapshot snapshot_with(std::shared_ptr<ListenerMetrics> metrics, bool tls) {
  StatusSnapshot s;
  s.version = "1.2.3";
  s.backend = "epoll";
  s.shards = 1;
  s.limit = 100;
  s.accepted_per_shard = {5};
  ListenerInfo info;
  info.address = "127.0.0.1:8888";
  info.service = "greet";
  info.proxy = "off";
  info.tls = tls;
  info.metrics = metrics;
  if (tls) info.certificates.push_back({"a \"quoted\" \\ name.pem", {}});
  s.listeners.push_back({info, metrics->totals(), 0});
  s.reload.last_error = "line 1: \"bad\"\n";
  return s;
}

TEST(Metrics, TheExpositionHasEverySeriesAtZeroAndEscapesLabels) {
  auto metrics = std::make_shared<ListenerMetrics>(1);
  const std::string text = render_metrics(snapshot_with(metrics, true), false);
  EXPECT_NE(text.find("# TYPE salam_connections_accepted_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("salam_connections_accepted_total{listener=\"127.0.0.1:8888\","
                      "service=\"greet\"} 0\n"),
            std::string::npos);
  for (int r = 0; r < kCloseReasons; ++r) {
    const std::string series =
        "salam_connections_closed_total{listener=\"127.0.0.1:8888\",service=\"greet\",reason=\"" +
        std::string(to_string(static_cast<CloseReason>(r))) + "\"} 0\n";
    EXPECT_NE(text.find(series), std::string::npos) << series;
  }
  EXPECT_NE(text.find("le=\"+Inf\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("certificate=\"a \\\"quoted\\\" \\\\ name.pem\""), std::string::npos);
  EXPECT_EQ(text.find("# EOF"), std::string::npos);
  EXPECT_NE(text.find("salam_build_info{version=\"1.2.3\",backend=\"epoll\"} 1\n"),
            std::string::npos);
}

TEST(Metrics, OpenMetricsNamesCounterFamiliesWithoutTotalAndEnds) {
  auto metrics = std::make_shared<ListenerMetrics>(1);
  const std::string text = render_metrics(snapshot_with(metrics, false), true);
  EXPECT_NE(text.find("# TYPE salam_connections_accepted counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE salam_build info\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("# EOF\n"));
  EXPECT_EQ(text.find("salam_tls_"), std::string::npos);  // no TLS listener, no TLS series
  EXPECT_TRUE(wants_openmetrics("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
  EXPECT_FALSE(wants_openmetrics("text/plain"));
}

TEST(Metrics, StatusJsonEscapesTextAndListsEveryReason) {
  auto metrics = std::make_shared<ListenerMetrics>(1);
  metrics->shard(0).accepted.add();
  const std::string json = render_status_json(snapshot_with(metrics, false));
  EXPECT_NE(json.find(R"("last_error":"line 1: \"bad\"\n")"), std::string::npos);
  EXPECT_NE(json.find(R"("active":1)"), std::string::npos);
  EXPECT_NE(json.find(R"("server_error":0)"), std::string::npos);
  EXPECT_NE(json.find(R"("last_time":null)"), std::string::npos);
  EXPECT_EQ(json.find(",,"), std::string::npos);
  EXPECT_EQ(json.find("{,"), std::string::npos);
}

}  // namespace
}  // namespace salam::daemon
