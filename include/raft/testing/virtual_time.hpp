// raft/testing/virtual_time.hpp - a deterministic simulated clock and the timer that runs on it.
//
// virtual_clock::now() is the time of the calling thread's `timeline`; it moves only when the
// simulation moves it, straight to the next deadline, so a simulated hour takes as long as the
// work done in it. virtual_timer mirrors the part of asio::basic_waitable_timer that raft::node
// uses; a wait completes (through the executor, like any Asio handler) when the timeline passes
// its expiry. Waits due at the same instant complete in the order they were started.
//
// For fault injection, a timer can belong to an owner (a node id, taken from the owner_scope
// alive when the timer is built; 0 = nobody). The timeline can then pause an owner's waits (a
// process stopped with SIGSTOP: its timers do not fire until it resumes) and stretch them (a
// clock running at another rate: a wait of d fires after d * rate of virtual time).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
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

  /// Starts over at time zero. Only between simulations: pending waits are dropped, every owner
  /// is resumed and runs at rate 1.
  void reset() {
    now_ = time_point{};
    // Dropping a wait may destroy a coroutine frame whose timers cancel themselves: let them
    // find empty maps, not ones being cleared.
    auto waits = std::move(waits_);
    auto held = std::move(held_);
    waits_.clear();
    held_.clear();
    rates_.clear();
    paused_.clear();
    waits.clear();
    held.clear();
  }

  /// The earliest pending expiry, if any wait is pending (a paused owner's waits are not).
  [[nodiscard]] std::optional<time_point> next_deadline() const {
    if (waits_.empty()) return std::nullopt;
    return waits_.begin()->first;
  }

  /// While alive, timers built on this thread belong to `owner` (a node id; 0 = nobody).
  class owner_scope {
   public:
    explicit owner_scope(std::uint64_t owner) noexcept
        : saved_(std::exchange(current().building_owner_, owner)) {}
    owner_scope(const owner_scope&) = delete;
    owner_scope& operator=(const owner_scope&) = delete;
    ~owner_scope() { current().building_owner_ = saved_; }

   private:
    std::uint64_t saved_;
  };

  /// Clock skew: from now on, a wait of d by a timer of `owner` fires after d * rate of virtual
  /// time (rate > 1: a slow clock, its timeouts come late; rate < 1: a fast one). Waits already
  /// pending keep their instant. Since every node reads the one virtual_clock, a node that
  /// re-checks an absolute deadline after its timer fires sees through a fast clock; what
  /// changes is how long its relative waits take.
  void set_rate(std::uint64_t owner, double rate) {
    if (!(rate > 0.0)) rate = 1.0;
    if (rate == 1.0)
      rates_.erase(owner);
    else
      rates_[owner] = rate;
  }
  [[nodiscard]] double rate(std::uint64_t owner) const {
    auto it = rates_.find(owner);
    return it == rates_.end() ? 1.0 : it->second;
  }

  /// Pause: `owner`'s waits do not fire, and new ones are held, until resume(owner). Owner 0
  /// (timers that belong to nobody) cannot be paused.
  void pause(std::uint64_t owner) {
    if (owner == 0 || !paused_.insert(owner).second) return;
    for (auto it = waits_.begin(); it != waits_.end();) {
      if (it->second.owner != owner) {
        ++it;
        continue;
      }
      held_.insert(waits_.extract(it++));
    }
  }
  /// Resumes `owner`: waits due while it was paused fire now, the others at their instant.
  void resume(std::uint64_t owner) {
    if (paused_.erase(owner) == 0) return;
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second.owner != owner) {
        ++it;
        continue;
      }
      auto node = held_.extract(it++);
      if (node.key() < now_) node.key() = now_;
      waits_.insert(std::move(node));
    }
  }
  [[nodiscard]] bool paused(std::uint64_t owner) const { return paused_.count(owner) != 0; }

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
    std::uint64_t owner = 0;
  };

  std::uint64_t new_timer_id() noexcept { return ++timer_ids_; }
  [[nodiscard]] std::uint64_t building_owner() const noexcept { return building_owner_; }

  void schedule(time_point at, std::uint64_t timer, detail::unique_function<void(std::error_code)> fn,
                std::uint64_t owner = 0) {
    if (owner != 0 && at > now_) {
      if (auto r = rates_.find(owner); r != rates_.end()) {
        // Stretched by the owner's clock rate; never shrunk to "now", so a fast clock cannot
        // make a timer that re-arms to the same deadline spin without time passing.
        const double d = std::ceil(double((at - now_).count()) * r->second);
        at = now_ + virtual_clock::duration(std::max<virtual_clock::rep>(1, virtual_clock::rep(d)));
      }
    }
    auto& into = owner != 0 && paused_.count(owner) != 0 ? held_ : waits_;
    into.emplace(at, wait{timer, std::move(fn), owner});
  }

  std::size_t cancel(std::uint64_t timer) {
    return cancel_in(waits_, timer) + (held_.empty() ? 0 : cancel_in(held_, timer));
  }

  static std::size_t cancel_in(std::multimap<time_point, wait>& waits, std::uint64_t timer) {
    std::size_t n = 0;
    for (auto it = waits.begin(); it != waits.end();) {
      if (it->second.timer != timer) {
        ++it;
        continue;
      }
      auto node = waits.extract(it++);
      node.mapped().complete(asio::error::operation_aborted);
      ++n;
    }
    return n;
  }

  time_point now_{};
  std::uint64_t timer_ids_ = 0;
  std::multimap<time_point, wait> waits_;
  std::multimap<time_point, wait> held_;   ///< waits of paused owners
  std::map<std::uint64_t, double> rates_;  ///< clock rate by owner, where not 1
  std::set<std::uint64_t> paused_;
  std::uint64_t building_owner_ = 0;       ///< set by owner_scope
};

inline virtual_clock::time_point virtual_clock::now() noexcept { return timeline::current().now(); }

/// A timer on the virtual clock, with the interface raft::node needs from asio::steady_timer.
class virtual_timer {
 public:
  using clock_type = virtual_clock;
  using duration = clock_type::duration;
  using time_point = clock_type::time_point;
  using executor_type = asio::any_io_executor;

  /// The timer belongs to the owner of the timeline::owner_scope alive now, if any.
  explicit virtual_timer(const executor_type& ex)
      : ex_(ex), id_(timeline::current().new_timer_id()), owner_(timeline::current().building_owner()) {}
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
              expiry_, id_,
              [h = std::move(handler), ex](std::error_code ec) mutable {
                asio::post(ex, [h = std::move(h), ec]() mutable { h(ec); });
              },
              owner_);
        },
        token);
  }

  [[nodiscard]] executor_type get_executor() const noexcept { return ex_; }
  /// The node this timer belongs to (0: nobody); see timeline::owner_scope.
  [[nodiscard]] std::uint64_t owner() const noexcept { return owner_; }

 private:
  executor_type ex_;
  std::uint64_t id_;
  std::uint64_t owner_;
  time_point expiry_{};
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
