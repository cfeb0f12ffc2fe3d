// raft/storage/memory.hpp - raft::memory_storage, a storage that keeps everything in memory.
//
// For tests, benchmarks and nodes that need no durability. It still models durability honestly:
// appends, truncations and compactions become "durable" only at flush(), in the order they were
// requested, and crash() throws away whatever was not flushed, the way a power cut loses what
// was not fsynced. A test that keeps the object across a node's restart therefore sees exactly
// what a real disk would have kept. Term and vote are durable as soon as they are saved; a
// snapshot is durable as soon as its writer's commit() completes.
//
// How: the durable log is a chunked deque; the changes requested since the last flush wait in a journal
// (the appended entries plus a list of operations), which flush() replays onto the durable log
// and crash() drops. Appends with nothing else queued before them (the usual case) skip the
// journal: they go onto the end of the deque at once, counted as not yet durable, so flush()
// has nothing to copy and crash() cuts them off again. Entries share their payloads with the
// node's in-memory log, so neither appending nor flushing copies a payload.
//
// Snapshots (raft::snapshot_storage): create_snapshot() returns a memory_snapshot_writer that
// buffers the bytes; commit() makes them the current snapshot (durable at once: crash() keeps
// it). open_snapshot() returns a memory_snapshot_reader sharing the snapshot's immutable bytes,
// so a reader stays valid after a newer snapshot replaces it. A writer not committed before a
// crash() is dead: its commit() throws std::logic_error and stores nothing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "raft/detail/asio_check.hpp"

#include <asio/awaitable.hpp>

#include "raft/detail/chunked_deque.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/detail/log_line.hpp"

namespace raft {
inline namespace v1 {

class memory_storage;

namespace detail {
/// An awaitable that completes at once: what memory_storage's asynchronous operations return,
/// their work being done by the time they return. One coroutine for all of them.
inline asio::awaitable<void> completed() { co_return; }

/// A committed snapshot of a memory_storage: immutable once shared.
struct memory_snapshot {
  snapshot_meta meta;
  std::vector<std::byte> bytes;
};
}  // namespace detail

/// A committed memory_storage snapshot (raft::snapshot_reader). Shares the snapshot's bytes:
/// cheap to copy, and valid for as long as it exists, whatever the storage does meanwhile.
class memory_snapshot_reader {
 public:
  [[nodiscard]] const snapshot_meta& meta() const noexcept { return snap_->meta; }
  [[nodiscard]] std::uint64_t size() const noexcept { return snap_->bytes.size(); }
  /// Copies up to `buf.size()` bytes from `offset`; returns how many (0 at or past the end).
  std::size_t read_at(std::uint64_t offset, std::span<std::byte> buf) const noexcept {
    const auto& bytes = snap_->bytes;
    if (offset >= bytes.size()) return 0;
    const std::size_t n = std::min<std::uint64_t>(buf.size(), bytes.size() - offset);
    if (n != 0) std::memcpy(buf.data(), bytes.data() + offset, n);
    return n;
  }

 private:
  friend class memory_storage;
  explicit memory_snapshot_reader(std::shared_ptr<const detail::memory_snapshot> s) : snap_(std::move(s)) {}
  std::shared_ptr<const detail::memory_snapshot> snap_;
};

/// A snapshot being written to a memory_storage (raft::snapshot_writer): write() appends bytes,
/// co_await commit() makes them the storage's current snapshot. Destroyed without commit(), it
/// leaves nothing behind. It refers to its storage, which must outlive it.
class memory_snapshot_writer {
 public:
  memory_snapshot_writer(memory_snapshot_writer&& o) noexcept
      : storage_(std::exchange(o.storage_, nullptr)), generation_(o.generation_), snap_(std::move(o.snap_)) {}
  memory_snapshot_writer& operator=(memory_snapshot_writer&& o) noexcept {
    storage_ = std::exchange(o.storage_, nullptr);
    generation_ = o.generation_;
    snap_ = std::move(o.snap_);
    return *this;
  }

  /// Appends `bytes` to the snapshot (copied).
  void write(std::span<const std::byte> bytes) {
    if (!snap_) throw std::logic_error("raft::memory_snapshot_writer::write after commit (or on a moved-from writer)");
    snap_->bytes.insert(snap_->bytes.end(), bytes.begin(), bytes.end());
  }

  /// Makes the snapshot durable and the storage's current one. Throws std::logic_error for a
  /// writer created before the storage's last crash() (its bytes are lost, as on a real disk).
  asio::awaitable<void> commit();

 private:
  friend class memory_storage;
  memory_snapshot_writer(memory_storage* s, std::uint64_t generation, snapshot_meta meta)
      : storage_(s), generation_(generation), snap_(std::make_shared<detail::memory_snapshot>()) {
    snap_->meta = std::move(meta);
  }

  memory_storage* storage_;
  std::uint64_t generation_;
  std::shared_ptr<detail::memory_snapshot> snap_;
};

class memory_storage {
 public:
  memory_storage() = default;
  /// Starts with `initial` already durable (tests use it to set up a node's log by hand).
  explicit memory_storage(persistent_state initial)
      : state_(initial.state),
        base_index_(initial.base_index),
        base_term_(initial.base_term),

        live_base_(base_index_),
        live_last_(base_index_ + initial.entries.size()) {
    for (auto& e : initial.entries) log_.push_back(std::move(e));
  }

  /// Everything durable: what a node restarted after a crash would read.
  [[nodiscard]] persistent_state load() const { return {state_, base_index_, base_term_, entries()}; }

  void save_hard_state(const hard_state& hs) { state_ = hs; }

  /// Queues entries; durable after the next flush(). They must continue the log, counting every
  /// change requested so far (std::invalid_argument otherwise).
  void append(std::span<const log_entry> entries) {
    if (entries.empty()) return;
    if (entries.front().index != live_last_.next())
      throw std::invalid_argument(detail::join({"raft::memory_storage::append: entry ", entries.front().index,
                                                " does not follow the last entry ", live_last_}));
    if (ops_.empty()) {  // nothing queued before them: onto the log itself, not yet durable
      for (const log_entry& e : entries) log_.push_back(e);
      unflushed_ += entries.size();
    } else {
      if (ops_.back().what != op::kind::append) ops_.push_back(op{op::kind::append, {}, {}, 0});
      ops_.back().count += entries.size();
      for (const log_entry& e : entries) appended_.push_back(e);
    }
    live_last_ = entries.back().index;
  }

  /// Queues the removal of every entry after `index`; durable after the next flush(). An index
  /// at or past the last entry removes nothing; one below the compaction base throws
  /// std::invalid_argument.
  void truncate_after(index_t index) {
    if (index >= live_last_) return;
    if (index < live_base_)
      throw std::invalid_argument(detail::join({"raft::memory_storage::truncate_after: index ", index,
                                                " is below the compaction base ", live_base_}));
    ops_.push_back(op{op::kind::truncate, index, {}, 0});
    live_last_ = index;
  }

  /// Makes every change requested so far durable, in order.
  asio::awaitable<void> flush() {
    flush_now();
    return detail::completed();
  }

  /// flush(), synchronously: nothing here waits for a device. A node flushes such a storage in
  /// the handler that appended, without a trip through its executor.
  void flush_now() {
    log_.reclaim(detail::reclaim_slice);  // entries compacted earlier, a slice per flush
    unflushed_ = 0;  // they come before every queued operation
    if (!ops_.empty()) {
      std::size_t next = 0;  // first entry of appended_ not yet in the log
      for (const op& o : ops_) {
        switch (o.what) {
          case op::kind::append:
            for (std::size_t k = next; k < next + o.count; ++k) log_.push_back(std::move(appended_[k]));
            next += o.count;
            break;
          case op::kind::truncate:
            if (const std::size_t keep = o.index - base_index_; keep < log_.size()) log_.truncate(keep);
            break;
          case op::kind::compact:
            if (o.index <= base_index_) break;
            // Destroyed by later flushes, a slice each.
            log_.erase_front_deferred(std::min<std::size_t>(o.index - base_index_, log_.size()));
            base_index_ = o.index;
            base_term_ = o.term;
            break;
        }
      }
      ops_.clear();
      appended_.clear();
    }
  }

  /// Simulates a crash: changes not yet flushed are lost; so is a snapshot writer not yet
  /// committed (its commit() throws). Committed snapshots, term and vote are kept.
  void crash() {
    log_.truncate(log_.size() - unflushed_);
    unflushed_ = 0;
    ops_.clear();
    appended_.clear();
    live_base_ = base_index_;
    live_last_ = base_index_ + log_.size();
    ++generation_;
  }

  /// The durable log (for tests).
  [[nodiscard]] std::vector<log_entry> entries() const {
    std::vector<log_entry> out;
    const std::size_t durable = log_.size() - unflushed_;
    out.reserve(durable);
    for (std::size_t i = 0; i < durable; ++i) out.push_back(log_[i]);
    return out;
  }
  [[nodiscard]] const hard_state& state() const noexcept { return state_; }

  // ---- raft::snapshot_storage ------------------------------------------------------------------

  /// Starts writing a snapshot. Its index may not be below the current snapshot's, and `meta`
  /// must be valid (nonzero index and term, a valid configuration): std::invalid_argument
  /// otherwise, as file_storage. A snapshot at the current snapshot's index replaces it.
  [[nodiscard]] memory_snapshot_writer create_snapshot(const snapshot_meta& meta) {
    if (snapshot_ && meta.index < snapshot_->meta.index)
      throw std::invalid_argument(detail::join({"raft::memory_storage::create_snapshot: index ", meta.index,
                                                " is below the current snapshot's ", snapshot_->meta.index}));
    if (meta.index == index_t{0} || meta.term == term_t{0} || validate(meta.config) != nullptr)
      throw std::invalid_argument("raft::memory_storage::create_snapshot: invalid snapshot metadata (index and term "
                                  "must be nonzero, the configuration valid)");
    return memory_snapshot_writer(this, generation_, meta);
  }

  /// The current (committed) snapshot, or std::nullopt.
  [[nodiscard]] std::optional<memory_snapshot_reader> open_snapshot() const {
    if (!snapshot_) return std::nullopt;
    return memory_snapshot_reader(snapshot_);
  }

  /// Queues the removal of the log's entries through `index` (whose term is `term`), ordered
  /// with the other changes and durable after the next flush(). load() then reports
  /// base_index = index, base_term = term. An index at or past the last entry empties the log
  /// (the next append starts at index + 1); one at or below the current base does nothing.
  void compact_through(index_t index, term_t term) {
    if (index <= live_base_) return;
    ops_.push_back(op{op::kind::compact, index, term, 0});
    live_base_ = index;
    if (index > live_last_) live_last_ = index;
  }

  /// The last entry held, counting changes not yet flushed (the base index when empty).
  [[nodiscard]] index_t last_index() const noexcept { return live_last_; }

 private:
  friend class memory_snapshot_writer;

  struct op {
    enum class kind : std::uint8_t { append, truncate, compact } what;
    index_t index;       ///< truncate: keep through here; compact: new base
    term_t term;         ///< compact: the base's term
    std::size_t count;   ///< append: how many entries of appended_
  };

  hard_state state_;
  // Durable.
  index_t base_index_{0};
  term_t base_term_{0};
  detail::chunked_deque<log_entry> log_;      ///< the entries after base_index_
  std::shared_ptr<const detail::memory_snapshot> snapshot_;
  // Requested since the last flush, in call order.
  std::vector<op> ops_;
  std::size_t unflushed_ = 0;                 ///< entries at log_'s end appended since the last flush
  std::vector<log_entry> appended_;           ///< entries of the append operations, in order
  index_t live_base_{0};                      ///< base and last index counting those changes
  index_t live_last_{0};
  std::uint64_t generation_ = 0;              ///< crash() count: writers from before are dead
};

inline asio::awaitable<void> memory_snapshot_writer::commit() {
  if (!snap_) throw std::logic_error("raft::memory_snapshot_writer::commit called twice (or on a moved-from writer)");
  if (storage_->generation_ != generation_)
    throw std::logic_error("raft::memory_snapshot_writer::commit: the storage crashed since this writer was created");
  storage_->snapshot_ = std::move(snap_);
  return detail::completed();
}

}  // namespace v1
}  // namespace raft
