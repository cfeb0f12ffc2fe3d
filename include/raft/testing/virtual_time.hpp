// raft/testing/virtual_time.hpp - a deterministic simulated clock and the timer that runs on it.
//
// virtual_clock::now() is the time of the calling thread's `timeline`; it moves only when the
// simulation moves it, straight to the next deadline, so a simulated hour takes as long as the
// work done in it. virtual_timer mirrors the part of asio::basic_waitable_timer that raft::node
// uses; a wait completes (through the executor, like any Asio handler) when the timeline passes
// its expiry. Waits due at the same instant complete in the order they were started.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

struct virtual_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<virtual_clock, duration>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
};

/// The virtual time of the simulation running on this thread, and its pending timer waits.
class timeline {
 public:
  using time_point = virtual_clock::time_point;

  static timeline& current() noexcept {
    thread_local timeline t;
    return t;
  }

  [[nodiscard]] time_point now() const noexcept { return now_; }

  /// Starts over at time zero. Only between simulations: pending waits are dropped.
  void reset() {
    now_ = time_point{};
    waits_.clear();
  }

  /// The earliest pending expiry, if any wait is pending.
  [[nodiscard]] std::optional<time_point> next_deadline() const {
    if (waits_.empty()) return std::nullopt;
    return waits_.begin()->first;
  }

  /// Moves time forward to `t` (never back) and completes every wait due by then, in order.
  void advance_to(time_point t) {
    if (t > now_) now_ = t;
    while (!waits_.empty() && waits_.begin()->first <= now_) {
      auto node = waits_.extract(waits_.begin());
      node.mapped().complete(std::error_code{});
    }
  }

 private:
  friend class virtual_timer;
  struct wait {
    std::uint64_t timer;
    detail::unique_function<void(std::error_code)> complete;
  };

  std::uint64_t new_timer_id() noexcept { return ++timer_ids_; }

  void schedule(time_point at, std::uint64_t timer, detail::unique_function<void(std::error_code)> fn) {
    waits_.emplace(at, wait{timer, std::move(fn)});
  }

  std::size_t cancel(std::uint64_t timer) {
    std::size_t n = 0;
    for (auto it = waits_.begin(); it != waits_.end();) {
      if (it->second.timer != timer) {
        ++it;
        continue;
      }
      auto node = waits_.extract(it++);
      node.mapped().complete(asio::error::operation_aborted);
      ++n;
    }
    return n;
  }

  time_point now_{};
  std::uint64_t timer_ids_ = 0;
  std::multimap<time_point, wait> waits_;
};

inline virtual_clock::time_point virtual_clock::now() noexcept { return timeline::current().now(); }

/// A timer on the virtual clock, with the interface raft::node needs from asio::steady_timer.
class virtual_timer {
 public:
  using clock_type = virtual_clock;
  using duration = clock_type::duration;
  using time_point = clock_type::time_point;
  using executor_type = asio::any_io_executor;

  explicit virtual_timer(const executor_type& ex)
      : ex_(ex), id_(timeline::current().new_timer_id()) {}
  virtual_timer(const virtual_timer&) = delete;
  virtual_timer& operator=(const virtual_timer&) = delete;
  ~virtual_timer() { cancel(); }

  /// Sets the expiry; cancels pending waits (like Asio). Returns how many were cancelled.
  std::size_t expires_at(time_point t) {
    const std::size_t n = cancel();
    expiry_ = t;
    return n;
  }
  std::size_t expires_after(duration d) { return expires_at(clock_type::now() + d); }
  [[nodiscard]] time_point expiry() const noexcept { return expiry_; }

  /// Completes every pending wait with asio::error::operation_aborted.
  std::size_t cancel() { return timeline::current().cancel(id_); }

  template <class WaitToken>
  auto async_wait(WaitToken&& token) {
    return asio::async_initiate<WaitToken, void(std::error_code)>(
        [this](auto handler) {
          auto ex = asio::get_associated_executor(handler, ex_);
          timeline::current().schedule(
              expiry_, id_, [h = std::move(handler), ex](std::error_code ec) mutable {
                asio::post(ex, [h = std::move(h), ec]() mutable { h(ec); });
              });
        },
        token);
  }

  [[nodiscard]] executor_type get_executor() const noexcept { return ex_; }

 private:
  executor_type ex_;
  std::uint64_t id_;
  time_point expiry_{};
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
