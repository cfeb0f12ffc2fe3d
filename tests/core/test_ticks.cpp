// Tests for raft/core/ticks.hpp: heartbeat ticks on a grid shared by a process's groups.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "raft/core/ticks.hpp"

using namespace std::chrono_literals;
using raft::heartbeat_grid_offset;
using raft::heartbeat_grid_phases;
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
    for (const auto offset : {0ms, 5ms, 19ms}) {
      const auto next = next_grid_tick(now, 20ms, offset);
      CHECK(next > now);
      CHECK(next - now <= 20ms);
      CHECK((next.time_since_epoch() - offset) % 20ms == 0ns);
    }
  }
}

TEST_CASE("next_grid_tick: an offset moves the grid, also before its first point") {
  CHECK(next_grid_tick(at(0ns), 50ms, 10ms) == at(10ms));  // the first point is the offset itself
  CHECK(next_grid_tick(at(9ms), 50ms, 10ms) == at(10ms));
  CHECK(next_grid_tick(at(10ms), 50ms, 10ms) == at(60ms));  // on the grid: the next one
  CHECK(next_grid_tick(at(59ms), 50ms, 10ms) == at(60ms));
  CHECK(next_grid_tick(at(3h + 70ms), 100ms, 75ms) == at(3h + 75ms));
  CHECK(next_grid_tick(at(3h + 75ms), 100ms, 75ms) == at(3h + 175ms));
}

TEST_CASE("next_grid_tick: a clock coarser than the interval's and the offset's units") {
  using micro_clock = std::chrono::time_point<clock_type, std::chrono::microseconds>;
  const micro_clock now{std::chrono::microseconds(1'234'567)};
  const auto next = next_grid_tick(now, std::chrono::nanoseconds(100ms), std::chrono::nanoseconds(25ms));
  CHECK(next == micro_clock{std::chrono::microseconds(1'325'000)});
}

TEST_CASE("heartbeat_grid_offset: a fixed phase per seed, spread evenly over the phases") {
  constexpr auto interval = std::chrono::nanoseconds(100ms);
  static_assert(heartbeat_grid_offset(interval, 42) == heartbeat_grid_offset(interval, 42));
  std::array<int, heartbeat_grid_phases> per_phase{};
  constexpr int seeds = 3200;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const auto offset = heartbeat_grid_offset(interval, seed * 1000003 + 7);  // seeds as groups get them
    REQUIRE(offset >= 0ns);
    REQUIRE(offset < interval);
    const auto step = interval / static_cast<std::int64_t>(heartbeat_grid_phases);
    REQUIRE(offset % step == 0ns);
    ++per_phase[static_cast<std::size_t>(offset / step)];
  }
  const int even = seeds / static_cast<int>(heartbeat_grid_phases);  // 200 each
  for (const int n : per_phase) {
    CHECK(n > even / 2);
    CHECK(n < even * 3 / 2);
  }
}
