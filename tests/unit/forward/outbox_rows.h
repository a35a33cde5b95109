// Outbox rows for the destination tests, and a commit as the store thread makes it: readings
// rows of canonical reading objects ("id":"i-<n>"), alert rows ("id":"a-<seq>").
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vitalgate/core/stats.h"
#include "vitalgate/store/outbox.h"

namespace vg::test {

inline std::string ReadingBody(std::uint64_t id) {
  return "{\"id\":\"i-" + std::to_string(id) +
         "\",\"device\":\"d\",\"metric\":\"spo2\",\"value\":97,\"unit\":\"%\","
         "\"ts\":\"2026-11-22T05:00:00.000Z\"}";
}

// One stored row of `n` readings of `patient`, ids first_id.., seq first_id.
inline StoredRow ReadingsRow(std::uint64_t first_id, const std::string& patient, int n, std::int64_t rx_ms) {
  StoredRow row;
  row.seq = first_id;
  row.patient = patient;
  row.rx_ms = rx_ms;
  row.count = static_cast<std::uint32_t>(n);
  row.format = RowFormat::kBatch;
  for (int i = 0; i < n; ++i) {
    if (i > 0) row.body += '\n';
    row.body += ReadingBody(first_id + static_cast<std::uint64_t>(i));
  }
  return row;
}

inline std::string AlertBody(std::uint64_t seq) {
  return "{\"id\":\"a-" + std::to_string(seq) + "\",\"kind\":\"threshold\"}";
}

inline StoredRow AlertRow(std::uint64_t seq, const std::string& patient, std::int64_t rx_ms) {
  StoredRow row;
  row.seq = seq;
  row.patient = patient;
  row.rx_ms = rx_ms;
  row.body = AlertBody(seq);
  return row;
}

// Commits the rows and counts them in `stats`, which is how a destination learns there is
// something new to read.
inline void CommitRows(OutboxStore& store, GatewayStats& stats, std::vector<StoredRow> batches,
                       std::vector<StoredRow> events) {
  WriteBatch b;
  std::uint64_t readings = 0;
  for (const StoredRow& r : batches) readings += r.count;
  b.batches = std::move(batches);
  b.events = std::move(events);
  const std::size_t n_events = b.events.size();
  ASSERT_TRUE(store.Commit(b).ok());
  stats.readings_committed.fetch_add(readings);
  stats.alerts_committed.fetch_add(n_events);
}

}  // namespace vg::test
