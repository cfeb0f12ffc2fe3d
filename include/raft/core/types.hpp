// raft/core/types.hpp - strong vocabulary types: terms, log indices, node ids and group ids.
//
// Pure header: no Asio, no I/O. Every other header of the library builds on these.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace raft {
inline namespace v1 {

/// A strongly typed unsigned 64-bit number. `Tag` keeps terms, indices and node ids apart:
/// passing a term where an index is expected does not compile.
template <class Tag>
struct strong_number {
  std::uint64_t value = 0;

  constexpr strong_number() noexcept = default;
  constexpr explicit strong_number(std::uint64_t v) noexcept : value(v) {}

  friend constexpr auto operator<=>(strong_number, strong_number) noexcept = default;

  /// The next number (`n + 1`).
  [[nodiscard]] constexpr strong_number next() const noexcept { return strong_number{value + 1}; }
  /// The previous number; the caller guarantees `value > 0`.
  [[nodiscard]] constexpr strong_number prev() const noexcept { return strong_number{value - 1}; }

  friend constexpr strong_number operator+(strong_number a, std::uint64_t n) noexcept {
    return strong_number{a.value + n};
  }
  friend constexpr strong_number operator-(strong_number a, std::uint64_t n) noexcept {
    return strong_number{a.value - n};
  }
  /// Distance between two numbers; the caller guarantees `a >= b`.
  friend constexpr std::uint64_t operator-(strong_number a, strong_number b) noexcept {
    return a.value - b.value;
  }
  friend std::ostream& operator<<(std::ostream& os, strong_number n) { return os << n.value; }
};

struct term_tag {};
struct index_tag {};
struct node_id_tag {};
struct group_id_tag {};

/// An election term. Term 0 is "no term yet"; the first real term is 1.
using term_t = strong_number<term_tag>;
/// A position in the replicated log. Index 0 is "before the first entry"; entries start at 1.
using index_t = strong_number<index_tag>;
/// The identity of a cluster member. Id 0 means "nobody" and is never a valid member.
using node_id = strong_number<node_id_tag>;

inline constexpr node_id no_node{};

/// The Raft group a message belongs to, where one process runs many groups (raft/multi/: each
/// group is a node of its own, and the groups share the process's transport). A deployment of
/// one group leaves it 0.
using group_id = strong_number<group_id_tag>;

/// The role a node plays in its current term.
enum class role : std::uint8_t { follower, pre_candidate, candidate, leader };

constexpr const char* to_string(role r) noexcept {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre-candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "?";
}

}  // namespace v1
}  // namespace raft

template <class Tag>
struct std::hash<raft::strong_number<Tag>> {
  std::size_t operator()(raft::strong_number<Tag> n) const noexcept {
    return std::hash<std::uint64_t>{}(n.value);
  }
};
