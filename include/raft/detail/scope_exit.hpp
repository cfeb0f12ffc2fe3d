// raft/detail/scope_exit.hpp - runs a function when a scope ends, however it ends (a return, an
// exception, a coroutine destroyed while suspended).
#pragma once

#include <utility>

namespace raft {
inline namespace v1 {
namespace detail {

/// `scope_exit guard{[&] { busy = false; }};` clears `busy` when the scope ends.
template <class F>
class [[nodiscard]] scope_exit {
 public:
  explicit scope_exit(F f) noexcept(noexcept(F(std::move(f)))) : f_(std::move(f)) {}
  scope_exit(const scope_exit&) = delete;
  scope_exit& operator=(const scope_exit&) = delete;
  ~scope_exit() { f_(); }

 private:
  F f_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
