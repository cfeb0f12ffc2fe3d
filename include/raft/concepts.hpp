// raft/concepts.hpp - the three plug points of raft::node, as C++20 concepts.
//
// A node is `raft::node<StateMachine, Storage, Transport>`. Each policy type is checked against
// the concept below when the node is instantiated; a type that lacks a member fails with a short
// error naming the missing expression. Each concept states both sides of the contract: what the
// node promises the policy, and what the policy must promise the node.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"
#include <system_error>

#include "raft/core/entry.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// Given a type SM and an object `sm` of it, SM is a state machine if
/// `sm.apply(index, command)` applies a committed command and returns a result (not void) that
/// is handed to whoever proposed the command.
///
/// The node promises: `apply` is called on the node's executor, for every committed command
/// exactly once per node incarnation, in log order with strictly increasing indices, never for
/// an entry that is not committed. `command` is valid only during the call.
/// The state machine promises: `apply` is deterministic (same commands, same state and results
/// on every node) and does not block for long (the node's executor waits for it).
template <class SM>
concept state_machine = requires(SM& sm, index_t index, std::span<const std::byte> command) {
  { sm.apply(index, command) };
} && !std::is_void_v<decltype(std::declval<SM&>().apply(index_t{}, std::span<const std::byte>{}))>;

/// The type `SM::apply` returns: what `node::propose` completes with.
template <state_machine SM>
using apply_result_t =
    std::decay_t<decltype(std::declval<SM&>().apply(index_t{}, std::span<const std::byte>{}))>;

/// Given a type S and an object `s` of it, S is a storage if it keeps the node's term, vote and
/// log entries durably:
/// - `s.load()` returns everything stored (a `persistent_state`);
/// - `s.save_hard_state(hs)` stores term and vote atomically and is durable when it returns;
/// - `s.append(entries)` and `s.truncate_after(index)` change the log, in call order;
/// - `co_await s.flush()` completes once every change requested before the call is durable.
///
/// The node promises: all calls come from the node's executor, one node per storage object;
/// `load` is called once, before anything else; appended entries are contiguous with the log
/// (after a truncation, the next append starts right after the truncation point); it never
/// truncates a committed entry; it does not call `append` or `flush` while a `flush` is in
/// progress (but `truncate_after` and `save_hard_state` may come then; a truncation belongs to
/// the next flush). Entries passed to `append` may be kept (they share their payload).
/// The storage promises: changes become durable in call order (a truncation is never reordered
/// with the appends around it); `flush` completes on the awaiting coroutine's executor; a failure
/// to make data durable is reported by throwing from `flush` or `save_hard_state`, never by
/// silently dropping data. The node treats such a throw as fatal and stops (fail-stop).
/// Group commit is the storage's business: many appends may share one flush.
template <class S>
concept storage = requires(S& s, const hard_state& hs, std::span<const log_entry> entries,
                           index_t index) {
  { s.load() } -> std::same_as<persistent_state>;
  { s.save_hard_state(hs) } -> std::same_as<void>;
  { s.append(entries) } -> std::same_as<void>;
  { s.truncate_after(index) } -> std::same_as<void>;
  { s.flush() } -> std::same_as<asio::awaitable<void>>;
};

/// Given a type T and an object `t` of it, T is a transport if it carries messages between nodes:
/// - `t.send(message)` hands a message over for delivery to `message.to` and returns at once;
/// - `co_await t.receive(batch)` waits until at least one message for this node has arrived,
///   moves every arrived message into `batch` (which the node has cleared), and returns true;
///   it returns false once the transport is closed;
/// - `t.close()` ends delivery: a pending and every later `receive` returns false.
///
/// The node promises: all calls come from the node's executor; it awaits `receive` from one
/// coroutine at a time; it calls `close` when stopping.
/// The transport promises: `send` never blocks the node (a slow or dead peer must not stall
/// anyone); it may lose, delay, duplicate or reorder messages, but never forges or corrupts one;
/// `receive` completes on the awaiting coroutine's executor.
template <class T>
concept transport = requires(T& t, message m, std::vector<message>& batch) {
  { t.send(std::move(m)) } -> std::same_as<void>;
  { t.receive(batch) } -> std::same_as<asio::awaitable<bool>>;
  { t.close() } -> std::same_as<void>;
};

/// Given a type T and an object `t` of it, T is a timer for raft::node if it does what the node
/// uses of asio::steady_timer: constructed from the node's executor, `t.expires_at(time_point)`,
/// `t.expires_after(duration)`, `t.cancel()`, and `co_await t.async_wait(token)` with an
/// error-code token; `T::clock_type::now()` is the node's clock. asio::steady_timer (real time)
/// and raft::testing::virtual_timer (the simulation's clock) model it.
template <class T>
concept timer = std::constructible_from<T, const asio::any_io_executor&> &&
    requires(T& t, typename T::clock_type::time_point at, typename T::clock_type::duration d,
             std::error_code& ec) {
  { T::clock_type::now() } -> std::same_as<typename T::clock_type::time_point>;
  t.expires_at(at);
  t.expires_after(d);
  t.cancel();
  { t.async_wait(asio::redirect_error(asio::use_awaitable, ec)) } -> std::same_as<asio::awaitable<void>>;
};

}  // namespace v1
}  // namespace raft
