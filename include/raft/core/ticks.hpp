// raft/core/ticks.hpp - heartbeat ticks on a grid that every group of a process shares.
//
// A leader ticks every heartbeat interval. Counted from each group's own start, the ticks of a
// process's thousands of groups fall at scattered instants, and every tick makes its own write
// to each peer and its own wake-up there. On a grid (the multiples of the interval since the
// clock's epoch) they fall together: the groups tick in the same executor turn, and the router
// sends all their heartbeats to a peer in one write (options::align_heartbeats). The grid has a
// few phases, so that a process's idle groups make a few small bursts per interval, not one
// large one.
#pragma once

#include <chrono>
#include <cstdint>

namespace raft {
inline namespace v1 {

/// The first instant strictly later than `now` of the form k * interval + offset since the
/// clock's epoch (interval > 0, 0 <= offset < interval). A tick waits at most one interval, and
/// at least a clock tick. Groups with the same offset tick together.
template <class TimePoint, class Duration, class Offset = Duration>
[[nodiscard]] constexpr TimePoint next_grid_tick(TimePoint now, Duration interval, Offset offset = Offset{}) noexcept {
  using D = typename TimePoint::duration;
  const auto step = std::chrono::duration_cast<D>(interval);
  const auto shift = std::chrono::duration_cast<D>(offset);
  const auto since = now.time_since_epoch() - shift;  // negative before the first tick
  auto ticks = since / step;                          // whole steps so far, rounded down
  if (since < D::zero() && since % step != D::zero()) --ticks;
  return TimePoint((ticks + 1) * step + shift);
}

/// How many offsets the ticks of aligned groups are spread over. All groups on one instant make
/// one burst of heartbeats, replies and work every interval, which delays entries in flight under
/// load; spread over this many instants, each burst is that much smaller, and a process still
/// makes only this many writes to a peer per interval for all its idle groups.
inline constexpr std::uint64_t heartbeat_grid_phases = 16;

/// The offset on the grid of a group whose node has election seed `seed`: a fixed hash of it,
/// so that groups seeded apart spread evenly over heartbeat_grid_phases offsets.
template <class Duration>
[[nodiscard]] constexpr Duration heartbeat_grid_offset(Duration interval, std::uint64_t seed) noexcept {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull;  // splitmix64's finalizer: every bit counts
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const auto phase = static_cast<typename Duration::rep>(z % heartbeat_grid_phases);
  return interval * phase / static_cast<typename Duration::rep>(heartbeat_grid_phases);
}

}  // namespace v1
}  // namespace raft
