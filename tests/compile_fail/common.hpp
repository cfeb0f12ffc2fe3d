// Shared by the compile-fail cases: require_*<T>() runs the check raft::node runs on each of its
// parameters (raft::detail::check_*, in raft/concepts.hpp), whose static_asserts name the concept
// and the member in the first error line.
#pragma once

#include <raft/concepts.hpp>

template <class SM>
void require_state_machine() {
  static_assert(raft::detail::check_state_machine<SM>());
}

template <class S>
void require_storage() {
  static_assert(raft::detail::check_storage<S>());
}

template <class T>
void require_transport() {
  static_assert(raft::detail::check_transport<T>());
}

template <class T>
void require_timer() {
  static_assert(raft::detail::check_timer<T>());
}
