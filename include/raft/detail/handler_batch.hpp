// raft/detail/handler_batch.hpp - many completion handlers for one executor, posted as one.
//
// Where one event readies many coroutines on the same executor (a received batch that holds
// messages for hundreds of groups; a shared log's round that made hundreds of groups' entries
// durable), posting each handler costs a post apiece: Asio allocates twice per post (the
// function and its operation, beyond a small per-thread cache) and locks the scheduler, and a
// post from another thread may wake the executor's thread. A handler_batch posts them as one
// function that calls each in order: one allocation of the vector, one lock, one wake-up.
//
// A handler that throws leaves the batch as it would leave a post of its own (out of run()); the
// handlers after it are posted again, as a batch, so none is lost.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include "raft/detail/asio_check.hpp"
#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// Handlers that all take `Args...` (the same values for each, given to post()).
template <class... Args>
class handler_batch {
 public:
  using handler = unique_function<void(Args...)>;

  void push_back(handler h) { handlers_.push_back(std::move(h)); }
  [[nodiscard]] bool empty() const noexcept { return handlers_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return handlers_.size(); }

  /// Posts every handler pushed so far to `ex`, as one function that calls each with `args`, in
  /// the order pushed; leaves this batch empty. Nothing is posted when it is empty.
  void post(const asio::any_io_executor& ex, Args... args) {
    if (handlers_.empty()) return;
    asio::post(ex, runner{std::exchange(handlers_, {}), 0, std::tuple<Args...>(std::move(args)...),
                          asio::prefer(ex, asio::execution::outstanding_work.untracked)});
  }

 private:
  struct runner {
    std::vector<handler> handlers;
    std::size_t next = 0;
    std::tuple<Args...> args;
    asio::any_io_executor executor;  ///< untracked: the posted function is outstanding work itself

    void operator()() {
      while (next < handlers.size()) {
        handler& h = handlers[next++];
        try {
          std::apply(h, args);
        } catch (...) {
          if (next < handlers.size()) asio::post(executor, std::move(*this));
          throw;
        }
      }
    }
  };

  std::vector<handler> handlers_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
