// expect-first: raft::timer
// expect-first: `cancel()`
// A timer that cannot be cancelled (the node cancels its timers to wake its loops).
#include <chrono>
#include <system_error>

#include <asio/any_io_executor.hpp>

#include "common.hpp"

struct bad_timer {
  using clock_type = std::chrono::steady_clock;
  explicit bad_timer(const asio::any_io_executor&) {}
  void expires_at(clock_type::time_point) {}
  void expires_after(clock_type::duration) {}
  template <class Handler>
  void async_wait(Handler&&) {}
};

void instantiate() { require_timer<bad_timer>(); }
