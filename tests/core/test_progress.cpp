// Tests for raft/core/progress.hpp: a follower's replication progress on the leader, through
// probe, pipelined replication, acknowledgements, rejections and lost messages.
#include <doctest/doctest.h>

#include "raft/core/progress.hpp"

using namespace raft;

TEST_CASE("progress: a probe is one message at a time and does not move next") {
  progress p(index_t{10});
  CHECK(p.probing);
  CHECK(p.can_send(4, 1000));
  p.sent(index_t{12}, 30);
  CHECK(p.next == index_t{10});  // a probe waits for its answer
  CHECK_FALSE(p.can_send(4, 1000));
  CHECK(p.inflight_bytes == 30);
}

TEST_CASE("progress: an accepted probe starts pipelining from the match") {
  progress p(index_t{10});
  p.sent(index_t{12}, 30);
  CHECK(p.acknowledged(index_t{12}));
  p.caught_up();
  CHECK_FALSE(p.probing);
  CHECK(p.match == index_t{12});
  CHECK(p.next == index_t{13});
  CHECK(p.inflight.empty());
  CHECK(p.inflight_bytes == 0);
  // Pipelining: next moves as messages go out, up to the window.
  p.sent(index_t{15}, 10);
  p.sent(index_t{18}, 10);
  CHECK(p.next == index_t{19});
  CHECK(p.can_send(3, 1000));
  p.sent(index_t{20}, 10);
  CHECK_FALSE(p.can_send(3, 1000));  // three messages in flight
  CHECK_FALSE(p.can_send(10, 30));   // thirty bytes in flight
}

TEST_CASE("progress: acknowledgements free the window; an old one changes nothing") {
  progress p(index_t{1});
  CHECK(p.acknowledged(index_t{0}) == false);
  p.acknowledged(index_t{0});
  p.caught_up();  // match 0, next 1: the probe at 1 "landed" (an empty log matches)
  REQUIRE_FALSE(p.probing);
  p.sent(index_t{5}, 50);
  p.sent(index_t{9}, 40);
  CHECK(p.acknowledged(index_t{5}));
  CHECK(p.inflight.size() == 1);
  CHECK(p.inflight_bytes == 40);
  CHECK_FALSE(p.acknowledged(index_t{4}));  // stale or duplicated
  CHECK(p.match == index_t{5});
  CHECK(p.acknowledged(index_t{9}));
  CHECK(p.inflight.empty());
  CHECK(p.inflight_bytes == 0);
}

TEST_CASE("progress: only a rejection of what is being sent now counts") {
  progress p(index_t{20});
  p.acknowledged(index_t{10});
  // Probing at 20: a rejection names the probe's previous entry (19), or it is stale.
  CHECK(p.rejection_counts(index_t{19}));
  CHECK_FALSE(p.rejection_counts(index_t{15}));
  CHECK_FALSE(p.rejection_counts(index_t{10}));  // known to match
  p.probe(index_t{15});
  CHECK(p.next == index_t{15});
  CHECK(p.probing);
  // Replicating: any rejection above the match counts.
  p.acknowledged(index_t{14});
  p.caught_up();
  REQUIRE_FALSE(p.probing);
  p.sent(index_t{17}, 1);
  p.sent(index_t{20}, 1);
  CHECK(p.rejection_counts(index_t{17}));
  CHECK_FALSE(p.rejection_counts(index_t{14}));
}

TEST_CASE("progress: nothing acknowledged for two ticks with sends outstanding probes again") {
  progress p(index_t{1});
  p.acknowledged(index_t{0});
  p.caught_up();
  CHECK_FALSE(p.tick());  // nothing in flight: nothing lost
  CHECK_FALSE(p.tick());
  p.sent(index_t{4}, 10);
  p.acknowledged(index_t{2});  // partial progress resets the count
  CHECK_FALSE(p.tick());
  CHECK(p.tick());  // two ticks without an acknowledgement
  CHECK(p.probing);
  CHECK(p.next == index_t{3});  // right after the match
  CHECK(p.inflight.empty());
  CHECK(p.ticks_without_ack == 0);
  // A lost probe is resent from the same place.
  p.sent(index_t{4}, 10);
  CHECK_FALSE(p.tick());
  CHECK(p.tick());
  CHECK(p.next == index_t{3});
}

TEST_CASE("progress: a match never leaves next behind it") {
  progress p(index_t{5});
  p.sent(index_t{5}, 1);
  p.acknowledged(index_t{9});  // e.g. after a snapshot was installed, or a late reply
  p.caught_up();
  CHECK(p.next == index_t{10});
  CHECK(p.match < p.next);
}
