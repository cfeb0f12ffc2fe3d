// raft/detail/unique_function.hpp - a move-only type-erased callable (C++23's
// std::move_only_function, which C++20 lacks). Holds completion handlers, which are move-only.
#pragma once

#include <memory>
#include <utility>

namespace raft {
inline namespace v1 {
namespace detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  unique_function() = default;
  template <class F>
  unique_function(F f) : impl_(std::make_unique<model<F>>(std::move(f))) {}

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  struct concept_ {
    virtual ~concept_() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct model final : concept_ {
    explicit model(F f) : fn(std::move(f)) {}
    R call(Args... args) override { return fn(std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<concept_> impl_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
