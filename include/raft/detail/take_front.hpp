// raft/detail/take_front.hpp - first-in first-out queues of rare operations kept in a vector.
//
// The node's queues of reads (pending ReadIndex rounds, reads forwarded to the leader) are short
// and mostly empty; a std::vector serves them as well as a std::deque, and every std::deque of
// another element type costs each user's translation unit its own instantiation (compile time).
// Items leave such a queue in order, as a run from the front: take_front_while() removes the run
// in one step, and the caller then completes each item in order.
#pragma once

#include <algorithm>
#include <iterator>
#include <vector>

namespace raft {
inline namespace v1 {
namespace detail {

/// Removes the longest prefix of `queue` whose items satisfy `pred` and returns it, in order.
template <class T, class Pred>
std::vector<T> take_front_while(std::vector<T>& queue, Pred pred) {
  const auto end = std::find_if_not(queue.begin(), queue.end(), pred);
  if (end == queue.begin()) return {};
  std::vector<T> taken(std::make_move_iterator(queue.begin()), std::make_move_iterator(end));
  queue.erase(queue.begin(), end);
  return taken;
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
