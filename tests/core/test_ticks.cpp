// Tests for raft/core/ticks.hpp: heartbeat ticks on a grid shared by a process's groups.
#include <doctest/doctest.h>

#include <chrono>

#include "raft/core/ticks.hpp"

using namespace std::chrono_literals;
using raft::next_grid_tick;

namespace {
using clock_type = std::chrono::steady_clock;
clock_type::time_point at(clock_type::duration since_epoch) { return clock_type::time_point(since_epoch); }
}  // namespace

TEST_CASE("next_grid_tick: the next multiple of the interval, strictly after now") {
  CHECK(next_grid_tick(at(0ns), 50ms) == at(50ms));
  CHECK(next_grid_tick(at(1ns), 50ms) == at(50ms));
  CHECK(next_grid_tick(at(49'999'999ns), 50ms) == at(50ms));
  CHECK(next_grid_tick(at(50ms), 50ms) == at(100ms));  // on the grid: the next one, not now
  CHECK(next_grid_tick(at(275ms), 50ms) == at(300ms));
  CHECK(next_grid_tick(at(3h + 7ms), 100ms) == at(3h + 100ms));
}

TEST_CASE("next_grid_tick: nodes that start at different times tick together") {
  // Two leaders, one elected 13 ms and one 41 ms after the last grid point, each ticking from its
  // own last tick: after their first tick they share every one.
  auto a = at(1'000ms + 13ms), b = at(1'000ms + 41ms);
  for (int i = 0; i < 5; ++i) {
    a = next_grid_tick(a, 50ms);
    b = next_grid_tick(b, 50ms);
    CHECK(a == b);
    CHECK(a.time_since_epoch() % 50ms == 0ns);
  }
  CHECK(a == at(1'250ms));
}

TEST_CASE("next_grid_tick: waits at most one interval, at least one clock tick") {
  for (auto now = at(0ns); now < at(1s); now += 7'919'993ns) {  // a prime step: every phase
    const auto next = next_grid_tick(now, 20ms);
    CHECK(next > now);
    CHECK(next - now <= 20ms);
  }
}
