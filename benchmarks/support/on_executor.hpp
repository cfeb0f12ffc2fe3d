// benchmarks/support/on_executor.hpp - the control coroutines' two moves: run a function on a
// node's executor (node state is read and written only there) and sleep.
#pragma once

#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "params.hpp"

namespace raft_bench {

/// Runs `f()` on executor `ex` (a node's strand) and returns its value to the calling coroutine.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> run_on(asio::any_io_executor ex, F f) {
  using R = std::invoke_result_t<F&>;
  co_return co_await asio::co_spawn(
      ex, [f = std::move(f)]() mutable -> asio::awaitable<R> { co_return f(); }, asio::use_awaitable);
}

inline asio::awaitable<void> sleep_for(bench_clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

}  // namespace raft_bench
