// raft/detail/suspend.hpp - one way for the library's coroutines to suspend until something
// calls them back, shared by every such place.
//
// `co_await detail::suspend(start, context)` suspends the calling coroutine and calls
// `start(context, resume, resumes_on)`: `resume` is the coroutine's completion handler,
// type-erased; calling it resumes the coroutine on the calling thread, so it must be called on
// `resumes_on`, the coroutine's executor, or posted there. signal::wait(), a parked
// transport receive, a yield to the executor and node::async_stop() all suspend this way.
//
// Why not an `asio::async_initiate` with a lambda at each place: every distinct initiation type
// instantiates Asio's use_awaitable machinery anew (async_result<...>::initiate, do_init, the
// handler's frame plumbing), in every translation unit that includes the header. With one
// initiation type, non-template, that machinery is instantiated once, whatever suspends.
#pragma once

#include <system_error>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"
#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// What a suspended coroutine is resumed with.
using resume_fn = unique_function<void()>;

/// Called once the coroutine is suspended, with the context given to suspend() and the
/// coroutine's executor.
using suspend_start = void (*)(void* context, resume_fn resume, const asio::any_io_executor& resumes_on);

/// The one initiation type behind suspend().
struct suspend_initiation {
  suspend_start start;
  void* context;

  template <class Handler>
  void operator()(Handler&& handler) const {
    const asio::any_io_executor resumes_on = asio::get_associated_executor(handler);
    start(context, resume_fn(std::forward<Handler>(handler)), resumes_on);
  }
};

/// Suspends the awaiting coroutine and calls `start(context, resume, resumes_on)`.
/// Awaitable; completes when `resume` is called.
[[nodiscard]] inline auto suspend(suspend_start start, void* context) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(suspend_initiation{start, context},
                                                                       asio::use_awaitable);
}

/// A completion handler for an operation that completes with an error code the caller does not
/// look at (a timer's wait): resumes a suspended coroutine. One type for every such wait.
struct resume_on_completion {
  resume_fn resume;
  void operator()(const std::error_code&) { resume(); }
};

/// Suspends the awaiting coroutine until `timer`'s wait completes, expired or cancelled.
template <class Timer>
[[nodiscard]] auto wait_for(Timer& timer) {
  return suspend(
      [](void* t, resume_fn resume, const asio::any_io_executor&) {
        static_cast<Timer*>(t)->async_wait(resume_on_completion{std::move(resume)});
      },
      &timer);
}

/// Suspends the awaiting coroutine and resumes it from `ex`'s queue: lets others run first.
[[nodiscard]] inline auto yield_to(const asio::any_io_executor& ex) {
  return suspend(
      [](void* context, resume_fn resume, const asio::any_io_executor&) {
        asio::post(*static_cast<const asio::any_io_executor*>(context), std::move(resume));
      },
      const_cast<asio::any_io_executor*>(&ex));
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
