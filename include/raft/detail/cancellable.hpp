// raft/detail/cancellable.hpp - per-operation cancellation for the node's operations: a
// handler's connected cancellation slot completes the operation at once with errc::cancelled,
// and the node's own completion, later, finds nothing left to complete.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>

#include "raft/core/errors.hpp"
#include "raft/detail/suspend.hpp"
#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// The cancellation requests an operation of the node honours. A cancelled operation completes
/// at once with errc::cancelled while the node carries on with it, so a request for `total`
/// cancellation (the operation had no effect) is not one it can meet.
inline constexpr asio::cancellation_type cancellable_by =
    asio::cancellation_type::terminal | asio::cancellation_type::partial;

/// Whether a handler type can have a connected cancellation slot: a type for which Asio names
/// no slot type (a plain callback) cannot, and its operations compile without the check.
struct no_cancellation_slot {};
template <class Handler>
inline constexpr bool may_have_cancellation_slot =
    !std::is_same_v<asio::associated_cancellation_slot_t<Handler, no_cancellation_slot>, no_cancellation_slot>;

/// What the node and a cancellation request share for one operation: its completion, taken by
/// whichever comes first. Both take it on the node's executor (a request is posted there), so
/// they never race; the one that comes second finds nothing and drops its outcome.
template <class T>
struct cancellable_op {
  unique_function<void(result<T>)> done;

  void complete(result<T> r) {
    if (auto taken = std::move(done)) taken(std::move(r));
  }
};

/// Sits in the handler's cancellation slot. It may be called, and destroyed, from wherever the
/// caller emits, even after the operation completed: it holds nothing but its share of the
/// operation and the node's executor.
template <class T>
struct cancel_on_request {
  std::shared_ptr<cancellable_op<T>> op;
  asio::any_io_executor node_executor;

  cancel_on_request(std::shared_ptr<cancellable_op<T>> o, asio::any_io_executor ex)
      : op(std::move(o)), node_executor(std::move(ex)) {}

  void operator()(asio::cancellation_type type) const {
    if ((type & cancellable_by) == asio::cancellation_type::none) return;
    // Posted, never completed inside emit(): the handler it resumes may destroy the signal
    // that is emitting.
    asio::post(node_executor,
               resume_fn([op = op] { op->complete(result<T>(error{errc::cancelled})); }));
  }
};

/// An operation's initiation (see node::initiation()).
template <class Initiate>
struct initiation_on : Initiate {
  using executor_type = asio::any_io_executor;
  asio::any_io_executor executor;

  [[nodiscard]] executor_type get_executor() const noexcept { return executor; }
};

/// Makes `done` cancellable through `slot` (connected). One allocation, only for such an
/// operation: the state the node's completion and the slot share.
template <class T, class Slot>
unique_function<void(result<T>)> make_cancellable(unique_function<void(result<T>)> done, Slot& slot,
                                                  const asio::any_io_executor& node_executor) {
  auto op = std::make_shared<cancellable_op<T>>(cancellable_op<T>{std::move(done)});
  slot.template emplace<cancel_on_request<T>>(op, node_executor);
  return [op = std::move(op)](result<T> r) { op->complete(std::move(r)); };
}

}  // namespace detail

}  // namespace v1
}  // namespace raft
