// raft/detail/signal.hpp - a wake-up signal for coroutines on one executor.
//
// A timer that never expires, cancelled to wake whoever waits on it: Asio's condition variable.
// Waiting completes with an error code, never an exception, so waking is cheap. The waiter
// re-checks its condition after every wake-up; a notify with nobody waiting is not remembered,
// which is correct on a single executor: the waiter checks its condition before it waits.
#pragma once

#include <system_error>

#include <asio/any_io_executor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

class signal {
 public:
  explicit signal(const asio::any_io_executor& ex)
      : timer_(ex, asio::steady_timer::time_point::max()) {}

  /// Suspends until the next notify(). Awaitable; no exception on wake-up.
  [[nodiscard]] auto wait() {
    return timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored_));
  }

  /// Wakes every current waiter.
  void notify() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
  std::error_code ignored_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
