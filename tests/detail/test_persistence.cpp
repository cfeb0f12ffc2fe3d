// Tests for raft/detail/persistence.hpp: the node's bookkeeping of what storage holds, through
// rounds, truncations during a flush, compactions and log resets after an installed snapshot.
#include <doctest/doctest.h>

#include "raft/detail/persistence.hpp"

using namespace raft;
using raft::detail::persistence_pipeline;

namespace {
index_t at(std::uint64_t i) { return index_t{i}; }
}  // namespace

TEST_CASE("persistence: a recovered log is durable and has nothing to hand over") {
  persistence_pipeline p;
  p.recovered(at(7));
  CHECK(p.submitted() == at(7));
  CHECK(p.durable() == at(7));
  CHECK_FALSE(p.pending(at(7), at(0), at(0)));
  CHECK(p.pending(at(8), at(0), at(0)));  // a new entry
}

TEST_CASE("persistence: a round hands over the new entries and its flush makes them durable") {
  persistence_pipeline p;
  p.recovered(at(3));
  const auto r = p.begin_round(at(6), at(0), at(0));
  CHECK_FALSE(r.reset);
  CHECK(r.append_from == at(4));
  CHECK(r.target == at(6));
  CHECK_FALSE(r.compact_through);
  CHECK(p.submitted() == at(6));
  CHECK(p.durable() == at(3));  // not before the flush
  CHECK_FALSE(p.pending(at(6), at(0), at(0)));
  CHECK(p.flushed(r.target) == at(6));
  CHECK(p.durable() == at(6));
}

TEST_CASE("persistence: entries appended during a flush wait for the next round") {
  persistence_pipeline p;
  const auto first = p.begin_round(at(5), at(0), at(0));
  CHECK(p.pending(at(9), at(0), at(0)));
  CHECK(p.flushed(first.target) == at(5));
  const auto second = p.begin_round(at(9), at(0), at(0));
  CHECK(second.append_from == at(6));
  CHECK(p.flushed(second.target) == at(9));
}

TEST_CASE("persistence: a truncation during a flush lowers what the flush makes durable") {
  persistence_pipeline p;
  p.recovered(at(2));
  const auto r = p.begin_round(at(10), at(0), at(0));
  // A new leader overwrites entries 8..10 while they are being flushed.
  CHECK(p.truncated(at(7)));  // storage holds them: it must truncate too
  CHECK(p.submitted() == at(7));
  CHECK(p.flushed(r.target) == at(7));  // 8..10 were truncated: not durable
  // The replacement entries go in the next round, right after the truncation point.
  const auto next = p.begin_round(at(9), at(0), at(0));
  CHECK(next.append_from == at(8));
  CHECK(p.flushed(next.target) == at(9));
}

TEST_CASE("persistence: truncating entries not handed over yet needs no storage call but a flush") {
  persistence_pipeline p;
  p.recovered(at(4));
  CHECK_FALSE(p.truncated(at(6)));  // storage holds 1..4 only
  CHECK(p.submitted() == at(4));
  CHECK(p.durable() == at(4));
  CHECK(p.pending(at(4), at(0), at(0)));  // the truncation is flushed even with no new entries
  const auto r = p.begin_round(at(4), at(0), at(0));
  CHECK(r.append_from > r.target);  // nothing to append
  CHECK_FALSE(p.pending(at(4), at(0), at(0)));
}

TEST_CASE("persistence: a truncation below the durable index lowers it at once") {
  persistence_pipeline p;
  p.recovered(at(9));
  CHECK(p.truncated(at(5)));
  CHECK(p.durable() == at(5));
}

TEST_CASE("persistence: compaction waits until storage holds the entries and a snapshot covers them") {
  persistence_pipeline p;
  p.recovered(at(10));
  p.compact_later(at(8));
  CHECK_FALSE(p.pending(at(10), at(0), at(5)));  // the snapshot reaches only 5
  CHECK(p.pending(at(10), at(0), at(8)));
  CHECK_FALSE(p.pending(at(10), at(8), at(8)));  // the log is compacted through 8 already
  const auto r = p.begin_round(at(10), at(0), at(8));
  REQUIRE(r.compact_through);
  CHECK(*r.compact_through == at(8));
  CHECK_FALSE(p.pending(at(10), at(8), at(8)));  // done: not asked again
}

TEST_CASE("persistence: a compaction past what storage will hold is dropped, not carried over") {
  persistence_pipeline p;
  p.recovered(at(4));
  p.compact_later(at(6));
  const auto r = p.begin_round(at(5), at(0), at(6));
  CHECK_FALSE(r.compact_through);  // storage holds only through 5
  CHECK_FALSE(p.pending(at(5), at(0), at(6)));
}

TEST_CASE("persistence: compact_later keeps the furthest point asked for") {
  persistence_pipeline p;
  p.recovered(at(20));
  p.compact_later(at(12));
  p.compact_later(at(9));
  const auto r = p.begin_round(at(20), at(0), at(15));
  REQUIRE(r.compact_through);
  CHECK(*r.compact_through == at(12));
}

TEST_CASE("persistence: a log reset comes first in the next round and the snapshot counts as durable") {
  persistence_pipeline p;
  p.recovered(at(6));
  const auto inflight = p.begin_round(at(8), at(0), at(0));
  p.reset_log(at(2), at(30), term_t{4});  // installed a snapshot through 30 the log does not match
  CHECK(p.submitted() == at(30));
  CHECK(p.durable() == at(30));
  CHECK(p.pending(at(30), at(30), at(30)));
  // The flush that was running when the log was reset completes. Its target belongs to the old
  // log: durable may only drop to it (too low is safe: less is acknowledged), never rise.
  CHECK(p.flushed(inflight.target) == at(8));
  const auto r = p.begin_round(at(32), at(30), at(30));
  REQUIRE(r.reset);
  CHECK(r.reset->old_base == at(2));
  CHECK(r.reset->index == at(30));
  CHECK(r.reset->term == term_t{4});
  CHECK(r.append_from == at(31));
  CHECK(p.flushed(r.target) == at(32));
  CHECK_FALSE(p.begin_round(at(32), at(30), at(30)).reset);  // once only
}
