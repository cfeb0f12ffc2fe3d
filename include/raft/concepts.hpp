// raft/concepts.hpp - the plug points of raft::node, as C++20 concepts.
//
// A node is `raft::node<StateMachine, Storage, Transport, Timer>`: three policies (state_machine,
// storage, transport) and the timer its loops sleep on (timer; asio::steady_timer by default).
// When the node is instantiated it checks each type, one requirement at a time
// (detail::check_policies, at the end of this file): a type that lacks a member fails with an
// error whose first line names the concept and the member. Each concept states both sides of the
// contract: what the node promises the policy, and what the policy must promise the node.
// The snapshot concepts are optional refinements of state_machine and storage.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
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
/// `sm.apply(index, command)` applies a committed command and returns a result (not void, and
/// movable: the node moves it into the proposer's completion) that is handed to whoever proposed
/// the command.
///
/// The node promises: `apply` is called on the node's executor, for every committed command
/// exactly once per node incarnation, in log order with strictly increasing indices, never for
/// an entry that is not committed. `command` is valid only during the call.
/// The state machine promises: `apply` is deterministic (same commands, same state and results
/// on every node) and does not block for long (the node's executor waits for it).
template <class SM>
concept state_machine = requires(SM& sm, index_t index, std::span<const std::byte> command) {
  { sm.apply(index, command) };
} && !std::is_void_v<decltype(std::declval<SM&>().apply(index_t{}, std::span<const std::byte>{}))> &&
    std::movable<std::decay_t<decltype(std::declval<SM&>().apply(index_t{}, std::span<const std::byte>{}))>>;

/// The type `SM::apply` returns: what `node::async_propose` completes with.
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
/// Optionally `s.stage_hard_state(hs)`: term and vote queued in order with the log changes and
/// durable with the next flush (raft::shared_log_group has it). The node then does not wait for
/// them: every message it sends after the change is held until that flush completes.
/// Optionally `s.async_flush(handler)`: flush() for a completion handler of signature
/// `void(std::exception_ptr)` (null on success), run on its associated executor, not inside the
/// call (file_storage and shared_log_group have it). The node then flushes through it, with no
/// coroutine per flush.
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

namespace detail {
/// How a transport hands a batch to a node that asked for it with `deliver_to(delivery)`:
/// `one(context, m)` for each of the batch's messages (the node moves `m` out), then
/// `end(context)` once, which ends the node's event (a batch with no message is never ended).
struct delivery {
  void* context = nullptr;
  void (*one)(void* context, message& m) noexcept = nullptr;
  void (*end)(void* context) noexcept = nullptr;
};
}  // namespace detail

/// Given a type T and an object `t` of it, T is a transport if it carries messages between nodes:
/// - `t.send(message)` hands a message over for delivery to `message.to` and returns at once;
/// - `co_await t.receive(batch)` waits until at least one message for this node has arrived,
///   moves every arrived message into `batch` (which the node has cleared), and returns true;
///   it returns false once the transport is closed;
/// - `t.close()` ends delivery: a pending and every later `receive` returns false.
/// Optionally `t.send_batched(message)` and `t.flush()`: the node then sends what it sends while
/// handling an event with send_batched() and calls flush() at the event's end (see
/// docs/concepts.md; tcp_transport has them). Optionally `t.deliver_to(detail::delivery)`: the
/// node then never awaits `receive`; the transport hands it each message that arrives, then ends
/// the batch (see detail::delivery), on the node's executor, until `close` (group_transport has
/// it: a router of many groups hands each group its messages without resuming a coroutine or
/// filling a queue per group).
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

// ---- Checking raft::node's parameters, one requirement at a time ------------------------------------
// A constraint failure is reported in the compiler's own words: g++ prints the whole template
// head first and names the missing member a dozen lines further down. raft::node therefore
// static_asserts every requirement of the concepts above on its own (detail::check_policies),
// with a message that names the concept and the member, so that the first error line says it:
//   error: static assertion failed: raft::storage: the Storage type must have
//          `void truncate_after(raft::index_t)`
// The checks also refuse what the concepts alone would let through without a word: a state
// machine or a storage with only some of the snapshot members, or whose snapshot objects do not
// model their concepts, would make the node keep its whole log and never take a snapshot.
// Each requirement is a named constant, which clang prints beside the message.
namespace detail {

template <class SM>
inline constexpr bool sm_has_apply = requires(SM& sm, index_t index, std::span<const std::byte> command) {
  sm.apply(index, command);
};
template <class SM>
using apply_expression_t = decltype(std::declval<SM&>().apply(index_t{}, std::span<const std::byte>{}));
template <class SM>
inline constexpr bool apply_result_is_movable = std::movable<std::decay_t<apply_expression_t<SM>>>;
template <class SM>
inline constexpr bool sm_has_snapshot = requires(SM& sm) { sm.snapshot(); };
template <class SM>
inline constexpr bool sm_has_restore = requires(SM& sm) { sm.restore(); };

template <class Src>
inline constexpr bool source_is_movable = std::movable<Src>;
template <class Src>
inline constexpr bool source_has_read = requires(Src& s, std::span<std::byte> buf) {
  { s.read(buf) } -> std::same_as<std::size_t>;
};
template <class Sink>
inline constexpr bool sink_is_movable = std::movable<Sink>;
template <class Sink>
inline constexpr bool sink_has_write_and_finish = requires(Sink& s, std::span<const std::byte> bytes) {
  s.write(bytes);
  s.finish();
};

/// A state machine with `snapshot()` or `restore()` claims snapshot support: it must model
/// snapshot_state_machine, or the node would silently take no snapshots.
template <class SM>
constexpr void check_snapshot_state_machine() {
  if constexpr (sm_has_snapshot<SM> || sm_has_restore<SM>) {
    static_assert(sm_has_snapshot<SM>,
                  "raft::snapshot_state_machine: the StateMachine type has `restore()` but no `snapshot()`; "
                  "it needs both, or neither (then the node keeps its whole log)");
    static_assert(sm_has_restore<SM>,
                  "raft::snapshot_state_machine: the StateMachine type has `snapshot()` but no `restore()`; "
                  "it needs both, or neither (then the node keeps its whole log)");
  }
  if constexpr (sm_has_snapshot<SM>) {
    using source = decltype(std::declval<SM&>().snapshot());
    static_assert(source_is_movable<source>,
                  "raft::snapshot_source: the type `snapshot()` returns must be movable (else the state "
                  "machine is no raft::snapshot_state_machine and the node never takes a snapshot)");
    static_assert(source_has_read<source>,
                  "raft::snapshot_source: the type `snapshot()` returns must have "
                  "`std::size_t read(std::span<std::byte>)`");
  }
  if constexpr (sm_has_restore<SM>) {
    using sink = decltype(std::declval<SM&>().restore());
    static_assert(sink_is_movable<sink>, "raft::snapshot_sink: the type `restore()` returns must be movable");
    static_assert(sink_has_write_and_finish<sink>,
                  "raft::snapshot_sink: the type `restore()` returns must have "
                  "`write(std::span<const std::byte>)` and `finish()`");
  }
}

/// Static_asserts each requirement of state_machine (and of snapshot_state_machine when SM has
/// a snapshot member). Returns true, for use as `static_assert(check_state_machine<SM>())`.
template <class SM>
constexpr bool check_state_machine() {
  static_assert(sm_has_apply<SM>,
                "raft::state_machine: the StateMachine type must have "
                "`R apply(raft::index_t, std::span<const std::byte>)`");
  if constexpr (sm_has_apply<SM>) {
    static_assert(!std::is_void_v<apply_expression_t<SM>>,
                  "raft::state_machine: `apply` must return a result (what async_propose() completes with), "
                  "not void");
    static_assert(std::is_void_v<apply_expression_t<SM>> || apply_result_is_movable<SM>,
                  "raft::state_machine: the result of `apply` must be movable (the node moves it to the "
                  "proposer)");
  }
  check_snapshot_state_machine<SM>();
  return true;
}

template <class S>
inline constexpr bool storage_has_load = requires(S& s) {
  { s.load() } -> std::same_as<persistent_state>;
};
template <class S>
inline constexpr bool storage_has_save_hard_state = requires(S& s, const hard_state& hs) {
  { s.save_hard_state(hs) } -> std::same_as<void>;
};
template <class S>
inline constexpr bool storage_has_append = requires(S& s, std::span<const log_entry> entries) {
  { s.append(entries) } -> std::same_as<void>;
};
template <class S>
inline constexpr bool storage_has_truncate_after = requires(S& s, index_t index) {
  { s.truncate_after(index) } -> std::same_as<void>;
};
template <class S>
inline constexpr bool storage_has_flush = requires(S& s) {
  { s.flush() } -> std::same_as<asio::awaitable<void>>;
};

template <class S>
inline constexpr bool storage_has_create_snapshot = requires(S& s, const snapshot_meta& meta) {
  s.create_snapshot(meta);
};
template <class S>
inline constexpr bool storage_has_open_snapshot = requires(S& s) {
  { s.open_snapshot().has_value() } -> std::same_as<bool>;
  *s.open_snapshot();
};
template <class S>
inline constexpr bool storage_has_compact_through = requires(S& s, index_t i, term_t t) {
  { s.compact_through(i, t) } -> std::same_as<void>;
};

/// A storage with any of the snapshot members claims snapshot support: it must model
/// snapshot_storage, or the node would silently keep its whole log.
template <class S>
constexpr void check_snapshot_storage() {
  constexpr bool any_snapshot_member = storage_has_create_snapshot<S> ||
                                       requires(S& s) { s.open_snapshot(); } ||
                                       requires(S& s, index_t i, term_t t) { s.compact_through(i, t); };
  if constexpr (any_snapshot_member) {
    static_assert(storage_has_create_snapshot<S>,
                  "raft::snapshot_storage: a Storage type with snapshot members must have "
                  "`W create_snapshot(const raft::snapshot_meta&)` (W: a raft::snapshot_writer)");
    static_assert(storage_has_open_snapshot<S>,
                  "raft::snapshot_storage: a Storage type with snapshot members must have "
                  "`std::optional<R> open_snapshot()` (R: a raft::snapshot_reader)");
    static_assert(storage_has_compact_through<S>,
                  "raft::snapshot_storage: a Storage type with snapshot members must have "
                  "`void compact_through(raft::index_t, raft::term_t)`");
  }
  if constexpr (storage_has_create_snapshot<S>) {
    using writer = decltype(std::declval<S&>().create_snapshot(std::declval<const snapshot_meta&>()));
    static_assert(snapshot_writer<writer>,
                  "raft::snapshot_writer: the type `create_snapshot(meta)` returns must be movable and have "
                  "`write(std::span<const std::byte>)` and `asio::awaitable<void> commit()`");
  }
  if constexpr (storage_has_open_snapshot<S>) {
    using reader = decltype(*std::declval<S&>().open_snapshot());
    static_assert(snapshot_reader<reader>,
                  "raft::snapshot_reader: the type `*open_snapshot()` gives must have `raft::snapshot_meta "
                  "meta() const`, `std::uint64_t size() const` and "
                  "`std::size_t read_at(std::uint64_t, std::span<std::byte>) const`");
  }
}

/// Static_asserts each requirement of storage (and of snapshot_storage when S has a snapshot
/// member). Returns true.
template <class S>
constexpr bool check_storage() {
  static_assert(storage_has_load<S>,
                "raft::storage: the Storage type must have `raft::persistent_state load()`");
  static_assert(storage_has_save_hard_state<S>,
                "raft::storage: the Storage type must have `void save_hard_state(const raft::hard_state&)`");
  static_assert(storage_has_append<S>,
                "raft::storage: the Storage type must have `void append(std::span<const raft::log_entry>)`");
  static_assert(storage_has_truncate_after<S>,
                "raft::storage: the Storage type must have `void truncate_after(raft::index_t)`");
  static_assert(storage_has_flush<S>,
                "raft::storage: the Storage type must have `asio::awaitable<void> flush()`");
  check_snapshot_storage<S>();
  return true;
}

template <class T>
inline constexpr bool transport_has_send = requires(T& t, message m) {
  { t.send(std::move(m)) } -> std::same_as<void>;
};
template <class T>
inline constexpr bool transport_has_receive = requires(T& t, std::vector<message>& batch) {
  { t.receive(batch) } -> std::same_as<asio::awaitable<bool>>;
};
template <class T>
inline constexpr bool transport_has_close = requires(T& t) {
  { t.close() } -> std::same_as<void>;
};

/// Static_asserts each requirement of transport. Returns true.
template <class T>
constexpr bool check_transport() {
  static_assert(transport_has_send<T>,
                "raft::transport: the Transport type must have `void send(raft::message)`");
  static_assert(transport_has_receive<T>,
                "raft::transport: the Transport type must have "
                "`asio::awaitable<bool> receive(std::vector<raft::message>&)`");
  static_assert(transport_has_close<T>, "raft::transport: the Transport type must have `void close()`");
  return true;
}

template <class T>
inline constexpr bool timer_has_clock = requires {
  { T::clock_type::now() } -> std::same_as<typename T::clock_type::time_point>;
};
template <class T>
inline constexpr bool timer_has_expires_at = requires(T& t, typename T::clock_type::time_point at) {
  t.expires_at(at);
};
template <class T>
inline constexpr bool timer_has_expires_after = requires(T& t, typename T::clock_type::duration d) {
  t.expires_after(d);
};
template <class T>
inline constexpr bool timer_has_cancel = requires(T& t) { t.cancel(); };
template <class T>
inline constexpr bool timer_has_async_wait = requires(T& t) { t.async_wait(timer_wait_handler{}); };

/// Static_asserts each requirement of timer. Returns true.
template <class T>
constexpr bool check_timer() {
  static_assert(std::constructible_from<T, const asio::any_io_executor&>,
                "raft::timer: the Timer type must be constructible from the node's executor "
                "(asio::any_io_executor)");
  static_assert(timer_has_clock<T>, "raft::timer: the Timer type must have a `clock_type` with `now()`");
  if constexpr (timer_has_clock<T>) {
    static_assert(timer_has_expires_at<T>,
                  "raft::timer: the Timer type must have `expires_at(clock_type::time_point)`");
    static_assert(timer_has_expires_after<T>,
                  "raft::timer: the Timer type must have `expires_after(clock_type::duration)`");
  }
  static_assert(timer_has_cancel<T>, "raft::timer: the Timer type must have `cancel()`");
  static_assert(timer_has_async_wait<T>,
                "raft::timer: the Timer type must have `async_wait(handler)` taking a completion handler "
                "`void(std::error_code)`, as every Asio timer does");
  return true;
}

/// What raft::node<StateMachine, Storage, Transport, Timer> checks first, in its class body:
///   static_assert(detail::check_policies<StateMachine, Storage, Transport, Timer>());
/// Every requirement that fails is its own error naming the concept and the member. Returns true.
template <class StateMachine, class Storage, class Transport, class Timer>
constexpr bool check_policies() {
  return check_state_machine<StateMachine>() && check_storage<Storage>() && check_transport<Transport>() &&
         check_timer<Timer>();
}

}  // namespace detail

}  // namespace v1
}  // namespace raft
