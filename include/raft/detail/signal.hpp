// raft/detail/signal.hpp - a wake-up signal for coroutines on one executor.
//
// Asio's condition variable, without a timer: wait() parks the waiting coroutine's completion
// handler here, notify() posts every parked handler to the executor. A wake-up is one post (no
// timer queue, no cancellation); the parked handlers live in a vector that keeps its capacity, so
// waiting allocates nothing in steady state. The waiter re-checks its condition after every
// wake-up; a notify with nobody waiting is not remembered, which is correct on a single
// executor: the waiter checks its condition before it waits.
//
// Whoever owns a signal notifies it before destroying it when a coroutine may wait on it (the
// node and the transports do so when they stop): a parked handler destroyed unwoken destroys its
// coroutine without resuming it.
#pragma once

#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include "raft/detail/asio_check.hpp"
#include "raft/detail/suspend.hpp"
#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

class signal {
 public:
  explicit signal(const asio::any_io_executor& ex) : ex_(ex) {}

  /// Suspends until the next notify(). Awaitable; never throws on wake-up.
  [[nodiscard]] auto wait() {
    return suspend(
        [](void* self, resume_fn resume, const asio::any_io_executor&) {
          static_cast<signal*>(self)->waiters_.push_back(std::move(resume));
        },
        this);
  }

  /// Wakes every current waiter (each resumes later, from the executor, never inside this call).
  void notify() {
    if (waiters_.empty()) return;
    waking_.swap(waiters_);  // a woken coroutine that waits again parks for the next notify
    for (auto& h : waking_) asio::post(ex_, std::move(h));
    waking_.clear();
  }

  /// Like notify(), but a single waiter resumes inside this call, without a trip through the
  /// executor (several waiters are posted as by notify()). Only for a caller whose own state is
  /// consistent at this point and that expects the waiter to run (and perhaps call back into it)
  /// before this returns. Must be called on the executor.
  void notify_now() {
    if (waiters_.size() != 1) return notify();
    auto h = std::move(waiters_.back());
    waiters_.pop_back();
    std::move(h)();
  }

 private:
  asio::any_io_executor ex_;
  std::vector<resume_fn> waiters_;
  std::vector<resume_fn> waking_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
