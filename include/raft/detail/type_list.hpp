// raft/detail/type_list.hpp - a compile-time list of types, for message_body's tagged union:
// the largest size and alignment of its members, and a type's position in it.
#pragma once

#include <cstddef>
#include <type_traits>

namespace raft {
inline namespace v1 {
namespace detail {

/// The types `Ts...`: their largest size and alignment, and where a type sits among them.
template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
  static constexpr std::size_t max_size() {
    std::size_t m = 0;
    ((m = sizeof(Ts) > m ? sizeof(Ts) : m), ...);
    return m;
  }
  static constexpr std::size_t max_align() {
    std::size_t m = 0;
    ((m = alignof(Ts) > m ? alignof(Ts) : m), ...);
    return m;
  }
  /// The position of T in the list, or `size` if it is not there.
  template <class T>
  static constexpr std::size_t index_of() {
    std::size_t i = 0;
    const bool found = ((std::is_same_v<T, Ts> ? true : (++i, false)) || ...);
    return found ? i : size;
  }
};
template <std::size_t I, class List>
struct type_at;
template <class First, class... Rest>
struct type_at<0, type_list<First, Rest...>> {
  using type = First;
};
template <std::size_t I, class First, class... Rest>
struct type_at<I, type_list<First, Rest...>> : type_at<I - 1, type_list<Rest...>> {};

}  // namespace detail
}  // namespace v1
}  // namespace raft
