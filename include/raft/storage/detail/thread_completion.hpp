// raft/storage/detail/thread_completion.hpp - an Asio completion handler that a storage thread
// (file_storage's, shared_log's) completes.
//
// The handler runs on its associated executor, which counts as busy (outstanding work) from the
// start of the operation until the handler has run. The storage thread posts the handler through
// an untracked copy of that executor, and the tracked one travels inside the posted function and
// is released on the handler's own thread, after the handler. So the storage thread touches the
// handler's execution context last when it posts: once the handler has run, its owner may
// destroy the io_context, even while the storage thread is still finishing its round. (Releasing
// the tracked executor on the storage thread after the post raced with exactly that.)
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

/// What a storage thread calls, once, with the operation's outcome (null: success).
template <class Handler>
unique_function<void(std::exception_ptr)> thread_completion(Handler handler) {
  auto work = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
  return [h = std::move(handler), work = std::move(work)](std::exception_ptr e) mutable {
    auto untracked = asio::prefer(work, asio::execution::outstanding_work.untracked);
    asio::post(untracked, [h = std::move(h), work = std::move(work), e = std::move(e)]() mutable {
      h(std::move(e));  // `work` goes with this function object, on the handler's thread
    });
  };
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
