// raft/core/log.hpp - raft::in_memory_log, the node's in-memory copy of the replicated log.
//
// The node keeps every entry it has not compacted here; storage is the durable copy behind it.
// Entries share their payload buffers, so holding them twice costs only the headers.
//
// Invariant: entries are contiguous, `entries_[k].index == first_index() + k`, and terms never
// decrease along the log. Index `base_index_` (term `base_term_`) is the entry just before the
// first one held: 0 for a log that starts at the beginning, the last compacted entry otherwise.
// The last term's run (`tail_term_`, from `tail_start_` to the end) is kept beside the entries:
// nearly every lookup a node makes (the entry before the next one to send, the commit index) falls
// in it, and with many groups per process the entries themselves are rarely in the cache.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <iterator>
#include <optional>
#include <span>
#include <vector>

#include "raft/detail/chunked_deque.hpp"
#include "raft/core/entry.hpp"

namespace raft {
inline namespace v1 {

class in_memory_log {
 public:
  in_memory_log() = default;
  in_memory_log(index_t base_index, term_t base_term) : base_index_(base_index), base_term_(base_term) {}

  [[nodiscard]] index_t first_index() const noexcept { return base_index_.next(); }
  [[nodiscard]] index_t last_index() const noexcept { return base_index_ + entries_.size(); }
  [[nodiscard]] term_t last_term() const noexcept {
    return entries_.empty() ? base_term_ : tail_term_;
  }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }

  /// Term of the entry at `i`; nullopt if `i` is past the end or compacted away.
  /// Index 0 (and the compaction base) have a known term.
  [[nodiscard]] std::optional<term_t> term_at(index_t i) const noexcept {
    if (i == base_index_) return base_term_;
    if (i < base_index_ || i > last_index()) return std::nullopt;
    if (i >= tail_start_) return tail_term_;
    return entries_[i - first_index()].term;
  }

  /// The entry at `i`; the caller guarantees `first_index() <= i <= last_index()`.
  [[nodiscard]] const log_entry& at(index_t i) const noexcept {
    assert(i >= first_index() && i <= last_index());
    return entries_[i - first_index()];
  }

  /// Appends one entry; its index must be `last_index() + 1`.
  void append(log_entry e) {
    assert(e.index == last_index().next());
    assert(e.term >= last_term());
    if (e.kind == entry_kind::configuration) configs_.push_back(e.index);
    if (entries_.empty() || e.term != tail_term_) {
      tail_term_ = e.term;
      tail_start_ = e.index;
    }
    entries_.push_back(std::move(e));
  }

  /// Removes every entry after `i` (keeps `i`).
  void truncate_after(index_t i) {
    assert(i >= base_index_);
    if (i < last_index()) entries_.truncate(i - base_index_);
    while (!configs_.empty() && configs_.back() > i) configs_.pop_back();
    if (i < tail_start_ && !entries_.empty()) find_tail_run();
  }

  /// Drops every entry up to and including `i` (whose term is `term`): `i` becomes the base.
  /// An `i` at or past the last entry empties the log. An `i` at or below the base does nothing.
  /// The dropped entries are destroyed a slice at a time by reclaim() (a snapshot compacts
  /// ~100,000 entries at once: freeing them in one go would stall the node for milliseconds).
  void compact_through(index_t i, term_t term) {
    if (i <= base_index_) return;
    if (i >= last_index()) {
      entries_.erase_front_deferred(entries_.size());
    } else {
      assert(entries_[i - first_index()].term == term);
      entries_.erase_front_deferred(i - base_index_);
    }
    base_index_ = i;
    base_term_ = term;
    configs_.erase(configs_.begin(), std::upper_bound(configs_.begin(), configs_.end(), i));
  }

  /// The index of the last configuration entry held at or before `i`, if any: found without
  /// walking the (~snapshot_entries long) run of commands since it.
  [[nodiscard]] std::optional<index_t> last_configuration_through(index_t i) const noexcept {
    const auto it = std::upper_bound(configs_.begin(), configs_.end(), i);
    if (it == configs_.begin()) return std::nullopt;
    return *std::prev(it);
  }

  /// Destroys up to `budget` entries that compact_through() dropped; returns how many still wait.
  std::size_t reclaim(std::size_t budget) noexcept { return entries_.reclaim(budget); }

  [[nodiscard]] index_t base_index() const noexcept { return base_index_; }

  /// Up to `max_count` entries starting at `from`, stopping before `max_bytes` is exceeded
  /// (at least one entry is returned when any exists).
  template <class Out>
  void copy(index_t from, std::size_t max_count, std::size_t max_bytes, Out& out) const {
    std::size_t bytes = 0, count = 0;
    for (index_t i = from; i <= last_index() && count < max_count; i = i.next(), ++count) {
      const auto& e = at(i);
      bytes += entry_size(e);
      if (bytes > max_bytes && count != 0) break;
      out.push_back(e);
    }
  }

  /// The first index of the term that the entry at `i` belongs to (scanning back); used for the
  /// conflict hint. The caller guarantees `term_at(i)` is known.
  [[nodiscard]] index_t first_index_of_term_at(index_t i) const noexcept {
    const term_t t = *term_at(i);
    while (i > first_index() && at(i.prev()).term == t) i = i.prev();
    if (i == first_index() && base_term_ == t && base_index_ != index_t{0}) return base_index_;
    return i;
  }

  /// The last index whose term is `t`, if the log (as held) has entries of that term.
  [[nodiscard]] std::optional<index_t> last_index_of_term(term_t t) const noexcept {
    for (index_t i = last_index(); i >= first_index() && i > index_t{0}; i = i.prev()) {
      const term_t ti = at(i).term;
      if (ti == t) return i;
      if (ti < t) return std::nullopt;
    }
    if (base_index_ != index_t{0} && base_term_ == t) return base_index_;  // compacted, known
    return std::nullopt;
  }

 private:
  /// Sets the tail run from the entries (after a truncation cut into it): terms never decrease,
  /// so the run's start is found by binary search.
  void find_tail_run() noexcept {
    tail_term_ = entries_.back().term;
    std::size_t lo = 0, hi = entries_.size() - 1;  // the run starts in [lo, hi]
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (entries_[mid].term == tail_term_) hi = mid; else lo = mid + 1;
    }
    tail_start_ = first_index() + lo;
  }

  index_t base_index_{0};
  term_t base_term_{0};
  term_t tail_term_{0};    ///< term of the last entry held (meaningful while entries_ is not empty)
  index_t tail_start_{0};  ///< first index of the last entry's term among those held
  detail::chunked_deque<log_entry> entries_;  ///< an allocation per ~1,000 entries, not per 10
  std::vector<index_t> configs_;              ///< indices of the configuration entries held, ascending
};

/// The former name of in_memory_log (which owns its entries: it is no view).
using log_view [[deprecated("raft::log_view is now raft::in_memory_log")]] = in_memory_log;

}  // namespace v1
}  // namespace raft
