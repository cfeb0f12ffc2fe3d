// raft/detail/chunked_deque.hpp - a double-ended queue in large chunks, for the log and other queues
// on the hot path.
//
// std::deque allocates a 512-byte block every few elements: for the log, whose entries arrive by
// the million, that is an allocation every ten entries. Here a chunk holds about 64 KiB of
// elements, and a chunk emptied at the front is kept as a spare for the back, so a queue that
// moves (proposals waiting, messages in flight) allocates nothing in steady state and a log
// that grows allocates once per thousand entries. Elements never move once placed, except on
// copy; the operations the log needs are O(1) or O(elements removed).
//
// The first chunk is small (about 512 bytes): a process that runs thousands of Raft groups holds
// thousands of logs and queues of a few elements each, and a 64 KiB chunk costs at least a page
// of memory each. The small chunk takes the last positions of chunk 0 (lead_ marks where they
// start), so positions, and the index arithmetic, are the same as with a full chunk 0; the next
// chunks are full ones. It is freed, not kept as the spare, once the front passes it.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace raft {
inline namespace v1 {
namespace detail {

/// How many compacted elements the log's owners (the node per event, memory_storage per flush)
/// destroy per reclaim() call: bounded work, so that a compaction never stalls an event.
inline constexpr std::size_t reclaim_slice = 4096;

template <class T>
class chunked_deque {
 public:
  static constexpr std::size_t chunk_size = std::bit_floor(std::max<std::size_t>(16, (std::size_t{64} << 10) / sizeof(T)));
  /// Elements in the first chunk a new deque allocates.
  static constexpr std::size_t first_chunk_size = std::min(chunk_size, std::max<std::size_t>(4, 512 / sizeof(T)));

  chunked_deque() = default;
  chunked_deque(const chunked_deque& o) {
    for (std::size_t i = 0; i < o.size(); ++i) push_back(o[i]);
  }
  chunked_deque(chunked_deque&& o) noexcept
      : chunks_(std::move(o.chunks_)), spare_(std::exchange(o.spare_, nullptr)),
        head_(std::exchange(o.head_, 0)), size_(std::exchange(o.size_, 0)), lead_(std::exchange(o.lead_, 0)),
        graveyard_(std::move(o.graveyard_)), dead_head_(std::exchange(o.dead_head_, 0)),
        dead_(std::exchange(o.dead_, 0)) {}
  chunked_deque& operator=(chunked_deque o) noexcept {
    swap(o);
    return *this;
  }
  ~chunked_deque() {
    clear();
    reclaim(dead_);
    if (lead_ > 0) release_first(chunks_.front());
    release(spare_);
  }

  void swap(chunked_deque& o) noexcept {
    chunks_.swap(o.chunks_);
    std::swap(spare_, o.spare_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
    std::swap(lead_, o.lead_);
    graveyard_.swap(o.graveyard_);
    std::swap(dead_head_, o.dead_head_);
    std::swap(dead_, o.dead_);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  [[nodiscard]] T& operator[](std::size_t i) noexcept { return *slot(i); }
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return *slot(i); }
  [[nodiscard]] T& front() noexcept { return *slot(0); }
  [[nodiscard]] T& back() noexcept { return *slot(size_ - 1); }
  [[nodiscard]] const T& back() const noexcept { return *slot(size_ - 1); }

  template <class... Args>
  T& emplace_back(Args&&... args) {
    if (chunks_.empty() && !spare_) start_small();
    const std::size_t j = head_ + size_;
    if (j / chunk_size == chunks_.size()) chunks_.push_back(take_chunk());
    T* p = position(j);
    std::construct_at(p, std::forward<Args>(args)...);
    ++size_;
    return *p;
  }
  void push_back(T v) { emplace_back(std::move(v)); }

  void pop_back() noexcept {
    assert(size_ > 0);
    std::destroy_at(slot(size_ - 1));
    --size_;
    if ((head_ + size_) % chunk_size == 0) drop_back_chunk();
  }

  void pop_front() noexcept { erase_front(1); }

  /// Removes the first `n` elements.
  void erase_front(std::size_t n) noexcept {
    assert(n <= size_);
    for (std::size_t i = 0; i < n; ++i) std::destroy_at(slot(i));
    head_ += n;
    size_ -= n;
    if (size_ == 0) return reset_empty();
    const std::size_t whole = head_ / chunk_size;
    for (std::size_t c = 0; c < whole; ++c) drop_front_chunk(chunks_[c], c);
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(whole));
    head_ -= whole * chunk_size;
  }

  /// Removes the first `n` elements like erase_front(), but destroys at once only those that
  /// share a chunk with the elements kept (fewer than a chunk); the elements of the chunks that
  /// empty wait for reclaim(), so removing a long prefix costs O(chunks) now. At most about
  /// one such removal waits: elements still waiting from an earlier one, if more than `n`, are
  /// destroyed first.
  void erase_front_deferred(std::size_t n) {
    assert(n <= size_);
    if (dead_ > n) reclaim(dead_);
    const std::size_t end = head_ + n;          // position of the first element kept
    const std::size_t whole = end / chunk_size;  // chunks holding only removed elements
    graveyard_.reserve(graveyard_.size() + whole);
    for (std::size_t c = 0; c < whole; ++c) {
      const std::size_t skip = c == 0 ? lead_ : 0;  // positions the small first chunk lacks
      const std::size_t from = c == 0 ? head_ - skip : 0;
      graveyard_.push_back(dead_chunk{chunks_[c], from, chunk_size - skip});
      dead_ += chunk_size - skip - from;
    }
    for (std::size_t at = std::max(head_, whole * chunk_size); at < end; ++at) std::destroy_at(position(at));
    if (whole > 0) lead_ = 0;  // the small first chunk, if any, is in the graveyard now
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(whole));
    head_ = end - whole * chunk_size;
    size_ -= n;
    if (size_ == 0) reset_empty();  // the chunks left are emptied, not dead
  }

  /// Destroys up to `budget` of the elements erase_front_deferred() left waiting, oldest first,
  /// and frees their chunks as they empty. Returns how many still wait.
  std::size_t reclaim(std::size_t budget) noexcept {
    while (budget > 0 && dead_ > 0) {
      dead_chunk& d = graveyard_[dead_head_];
      const std::size_t k = std::min(budget, d.to - d.from);
      for (std::size_t i = 0; i < k; ++i) std::destroy_at(d.chunk + d.from + i);
      d.from += k;
      dead_ -= k;
      budget -= k;
      if (d.from == d.to) {
        if (d.to < chunk_size) release_first(d.chunk);
        else keep_spare(d.chunk);
        if (++dead_head_ == graveyard_.size()) {
          graveyard_.clear();
          dead_head_ = 0;
        }
      }
    }
    return dead_;
  }

  /// Elements erase_front_deferred() removed that reclaim() has not destroyed yet.
  [[nodiscard]] std::size_t waiting() const noexcept { return dead_; }

  /// Keeps the first `n` elements (n <= size()).
  void truncate(std::size_t n) noexcept {
    while (size_ > n) pop_back();
  }

  void clear() noexcept { erase_front(size_); }

 private:
  T* slot(std::size_t i) const noexcept {
    assert(i < size_);
    return position(head_ + i);
  }
  /// Where position j is (chunk j / chunk_size; the small first chunk starts at lead_).
  T* position(std::size_t j) const noexcept {
    const std::size_t c = j / chunk_size;
    return chunks_[c] + (j % chunk_size - (c == 0 ? lead_ : 0));
  }
  void start_small() {
    chunks_.push_back(std::allocator<T>().allocate(first_chunk_size));
    lead_ = chunk_size - first_chunk_size;
    head_ = lead_;
  }
  static void release_first(T* c) noexcept { std::allocator<T>().deallocate(c, first_chunk_size); }
  /// Chunk c, emptied from the front: the small first chunk is freed, a full one kept as the spare.
  void drop_front_chunk(T* chunk, std::size_t c) noexcept {
    if (c == 0 && lead_ > 0) {
      release_first(chunk);
      lead_ = 0;
    } else {
      keep_spare(chunk);
    }
  }
  /// Every element gone: the small first chunk stays in place (a queue that empties and refills
  /// allocates nothing), every full chunk but the spare is freed.
  void reset_empty() noexcept {
    const std::size_t keep = lead_ > 0 ? 1 : 0;
    for (std::size_t c = keep; c < chunks_.size(); ++c) keep_spare(chunks_[c]);
    chunks_.resize(keep);
    head_ = lead_;
  }
  T* take_chunk() {
    if (spare_) return std::exchange(spare_, nullptr);
    return std::allocator<T>().allocate(chunk_size);
  }
  void keep_spare(T* c) noexcept {
    if (spare_) release(spare_);
    spare_ = c;
  }
  static void release(T* c) noexcept {
    if (c) std::allocator<T>().deallocate(c, chunk_size);
  }
  void drop_back_chunk() noexcept {
    // The element just removed was the first of the last chunk: that chunk is empty now.
    if (size_ == 0) return reset_empty();
    const std::size_t used = (head_ + size_ - 1) / chunk_size + 1;
    while (chunks_.size() > used) {
      keep_spare(chunks_.back());
      chunks_.pop_back();
    }
  }

  /// A chunk erase_front_deferred() took out, its elements [from, to) not destroyed yet (offsets in
  /// the chunk; to < chunk_size: the small first chunk).
  struct dead_chunk {
    T* chunk;
    std::size_t from;
    std::size_t to;
  };

  std::vector<T*> chunks_;
  T* spare_ = nullptr;
  std::size_t head_ = 0;  ///< position of the first element in chunks_.front()
  std::size_t size_ = 0;
  std::size_t lead_ = 0;  ///< chunk_size - first_chunk_size while chunks_.front() is the small first chunk
  std::vector<dead_chunk> graveyard_;  ///< from dead_head_ on: waiting for reclaim()
  std::size_t dead_head_ = 0;
  std::size_t dead_ = 0;  ///< elements waiting in the graveyard
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
