// raft/core/ticks.hpp - heartbeat ticks on a grid that every group of a process shares.
//
// A leader ticks every heartbeat interval. Counted from each group's own start, the ticks of a
// process's thousands of groups fall at scattered instants, and every tick makes its own write
// to each peer and its own wake-up there. On a grid (the multiples of the interval since the
// clock's epoch) they fall together: the groups tick in the same executor turn, and the router
// sends all their heartbeats to a peer in one write (options::align_heartbeats).
#pragma once

namespace raft {
inline namespace v1 {

/// The first multiple of `interval` after the clock's epoch that is strictly later than `now`
/// (interval > 0). A tick waits at most one interval, and at least a clock tick.
template <class TimePoint, class Duration>
[[nodiscard]] constexpr TimePoint next_grid_tick(TimePoint now, Duration interval) noexcept {
  const auto since_epoch = now.time_since_epoch();
  const auto step = typename TimePoint::duration(interval);
  const auto ticks = since_epoch / step;  // whole steps so far (now >= epoch)
  return TimePoint((ticks + 1) * step);
}

}  // namespace v1
}  // namespace raft
