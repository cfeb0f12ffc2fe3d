// raft/concepts.hpp - the plug points of raft::node, as C++20 concepts.
//
// A node is `raft::node<StateMachine, Storage, Transport, Timer>`: three policies (state_machine,
// storage, transport) and the timer its loops sleep on (timer; asio::steady_timer by default).
// Each type is checked against its concept below when the node is instantiated; a type that lacks
// a member fails with a short error naming the missing expression. Each concept states both sides
// of the contract: what the node promises the policy, and what the policy must promise the node.
// The snapshot concepts are optional refinements of state_machine and storage.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"
#include <system_error>

#include "raft/core/entry.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/snapshot.hpp"
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

// ---- Snapshots (optional) ------------------------------------------------------------------------
// A node takes snapshots and compacts its log only when both its state machine and its storage
// model the snapshot concepts below; otherwise it keeps the whole log (docs/snapshots.md).

/// A point-in-time image of a state machine, read in order: `src.read(buf)` copies up to
/// `buf.size()` next bytes into `buf` and returns how many; 0 means the end.
template <class S>
concept snapshot_source = std::movable<S> && requires(S& s, std::span<std::byte> buf) {
  { s.read(buf) } -> std::same_as<std::size_t>;
};

/// Receives a snapshot's bytes in order (`sink.write(bytes)`); `sink.finish()` then replaces
/// the state machine's state with the snapshot's. A sink destroyed before finish() changes
/// nothing.
template <class S>
concept snapshot_sink = std::movable<S> && requires(S& s, std::span<const std::byte> bytes) {
  s.write(bytes);
  s.finish();
};

/// A state machine that can be snapshotted: `sm.snapshot()` returns a snapshot_source of the
/// state after the last applied command; `sm.restore()` returns a snapshot_sink.
///
/// The node promises: it calls `snapshot()` right after an apply, on the node's executor, and
/// reads the source later in chunks, interleaved with further applies; between `restore()` and
/// the sink's `finish()` it applies nothing. The state machine promises: the source is
/// unaffected by later applies (copy-on-write, a copy, or an immutable version); restoring
/// what a source produced gives the same state and the same future results on every node.
/// A sink may throw from write() or finish() on malformed bytes: the node then fail-stops.
template <class SM>
concept snapshot_state_machine = state_machine<SM> && requires(SM& sm) {
  { sm.snapshot() } -> snapshot_source;
  { sm.restore() } -> snapshot_sink;
};

/// A snapshot being written to storage: `w.write(bytes)` in order, then `co_await w.commit()`
/// makes it durable and the storage's current snapshot. A writer destroyed before commit()
/// leaves nothing behind.
template <class W>
concept snapshot_writer = std::movable<W> && requires(W& w, std::span<const std::byte> bytes) {
  w.write(bytes);
  { w.commit() } -> std::same_as<asio::awaitable<void>>;
};

/// A stored snapshot, read at any offset (so a transfer can resume where it stopped):
/// `r.meta()`, `r.size()` in bytes, `r.read_at(offset, buf)` returns the bytes copied (fewer
/// than `buf.size()` only at the end). A reader stays valid when a newer snapshot replaces its
/// snapshot as the current one.
template <class R>
concept snapshot_reader = requires(const R& r, std::uint64_t offset, std::span<std::byte> buf) {
  { r.meta() } -> std::convertible_to<snapshot_meta>;
  { r.size() } -> std::same_as<std::uint64_t>;
  { r.read_at(offset, buf) } -> std::same_as<std::size_t>;
};

/// A storage that keeps snapshots and compacts its log:
/// - `s.create_snapshot(meta)` starts writing a snapshot (a snapshot_writer);
/// - `s.open_snapshot()` returns the current durable snapshot (std::optional of a
///   snapshot_reader), std::nullopt when there is none;
/// - `s.compact_through(index, term)` removes the log's entries up to `index` (whose term is
///   `term`), ordered with the other log changes and durable with the next flush; an `index` at
///   or past the last entry empties the log, and the next append starts at `index + 1`.
///
/// The node promises: at most one writer exists at a time; a snapshot's index is never below the
/// current snapshot's (one at the same index replaces it); it compacts only through an index
/// covered by a committed (durable) snapshot, and calls compact_through under the same rules
/// as append (never while a flush is in progress).
template <class S>
concept snapshot_storage = storage<S> && requires(S& s, const snapshot_meta& meta, index_t i, term_t t) {
  { s.create_snapshot(meta) } -> snapshot_writer;
  { s.open_snapshot().has_value() } -> std::same_as<bool>;
  { *s.open_snapshot() } -> snapshot_reader;
  { s.compact_through(i, t) } -> std::same_as<void>;
};

/// Given a type T and an object `t` of it, T is a transport if it carries messages between nodes:
/// - `t.send(message)` hands a message over for delivery to `message.to` and returns at once;
/// - `co_await t.receive(batch)` waits until at least one message for this node has arrived,
///   moves every arrived message into `batch` (which the node has cleared), and returns true;
///   it returns false once the transport is closed;
/// - `t.close()` ends delivery: a pending and every later `receive` returns false.
/// Optionally `t.send_batched(message)` and `t.flush()`: the node then sends what it sends while
/// handling an event with send_batched() and calls flush() at the event's end (see
/// docs/concepts.md; tcp_transport has them).
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

namespace detail {
/// Stands for the completion handler the node gives a timer's async_wait (a callable taking the
/// error code, with no associated executor: it runs on the timer's).
struct timer_wait_handler {
  void operator()(const std::error_code&) const noexcept {}
};
}  // namespace detail

/// Given a type T and an object `t` of it, T is a timer for raft::node if it does what the node
/// uses of asio::steady_timer: constructed from the node's executor, `t.expires_at(time_point)`,
/// `t.expires_after(duration)`, `t.cancel()`, and `t.async_wait(handler)` with a completion
/// handler that takes a `std::error_code` (as every Asio timer accepts: any completion token);
/// `T::clock_type::now()` is the node's clock. asio::steady_timer (real time) and
/// raft::testing::virtual_timer (the simulation's clock) model it.
template <class T>
concept timer = std::constructible_from<T, const asio::any_io_executor&> &&
    requires(T& t, typename T::clock_type::time_point at, typename T::clock_type::duration d) {
  { T::clock_type::now() } -> std::same_as<typename T::clock_type::time_point>;
  t.expires_at(at);
  t.expires_after(d);
  t.cancel();
  t.async_wait(detail::timer_wait_handler{});
};

}  // namespace v1
}  // namespace raft
