// raft/detail/heap_sort.hpp - the sort behind the library's short lists of ids and indexes (the
// members of a configuration, a quorum's match indexes), and the duplicate check built on it.
//
// std::sort and std::nth_element each instantiate an introsort (a partition loop, a heap sort
// fallback and an insertion sort), which every translation unit that includes a node compiles
// again per element type. These lists hold a handful of elements, so one small heap sort per
// element type does: O(n log n) in the worst case (the lists can come from untrusted bytes, a
// decoded configuration entry), no allocation, no recursion.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace raft {
inline namespace v1 {
namespace detail {

/// Sorts `v` in ascending order of `<`.
template <class T>
void heap_sort(std::span<T> v) noexcept {
  // Moves v[root] down until neither child within v[0, end) is greater.
  auto sift_down = [v](std::size_t root, std::size_t end) noexcept {
    for (std::size_t child = 2 * root + 1; child < end; child = 2 * root + 1) {
      if (child + 1 < end && v[child] < v[child + 1]) ++child;
      if (!(v[root] < v[child])) return;
      std::swap(v[root], v[child]);
      root = child;
    }
  };
  for (std::size_t i = v.size() / 2; i-- > 0;) sift_down(i, v.size());  // a max-heap
  for (std::size_t end = v.size(); end > 1; --end) {
    std::swap(v[0], v[end - 1]);  // the largest left goes last
    sift_down(0, end - 1);
  }
}

/// Whether `ids` lists an element twice. O(n log n) and no recursion: the list may come from
/// untrusted bytes (a decoded configuration entry).
template <class T>
[[nodiscard, gnu::noinline]] bool has_duplicates(std::vector<T> ids) {
  heap_sort(std::span<T>(ids));
  return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
