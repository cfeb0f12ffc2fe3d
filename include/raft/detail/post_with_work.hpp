// raft/detail/post_with_work.hpp - completing a handler from another thread without touching its
// execution context afterwards.
//
// A pending operation keeps its handler's executor busy (outstanding work) until the handler has
// run. Whoever completes it posts the handler there; if it then released its work-tracking copy
// of the executor on its own thread, that release could come after the handler ran and its
// owner destroyed the io_context: a read of the freed scheduler (ASan saw it in shared_log's
// tests). So the handler is posted through an untracked copy, and the tracked one travels inside
// the posted function, released on the handler's own thread after the handler.
#pragma once

#include <exception>
#include <utility>

#include "raft/detail/asio_check.hpp"

#include <asio/associated_executor.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// Posts `f` to `work`, an executor that tracks outstanding work, and releases `work` on that
/// executor's thread once `f` has run.
template <class WorkExecutor, class F>
void post_with_work(WorkExecutor work, F f) {
  auto untracked = asio::prefer(work, asio::execution::outstanding_work.untracked);
  asio::post(untracked, [f = std::move(f), work = std::move(work)]() mutable { f(); });
}

/// What a storage thread calls, once, with an operation's outcome (null: success), to complete
/// `handler` on its associated executor, which counts as busy until then.
template <class Handler>
unique_function<void(std::exception_ptr)> thread_completion(Handler handler) {
  auto work = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
  return [h = std::move(handler), work = std::move(work)](std::exception_ptr e) mutable {
    post_with_work(std::move(work), [h = std::move(h), e = std::move(e)]() mutable { h(std::move(e)); });
  };
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
