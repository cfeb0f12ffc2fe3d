// raft/detail/unique_function.hpp - a move-only type-erased callable (C++23's
// std::move_only_function, which C++20 lacks). Holds completion handlers, which are move-only.
// Callables up to `inline_size` bytes live inside the object: storing a typical Asio completion
// handler allocates nothing.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace raft {
inline namespace v1 {
namespace detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  static constexpr std::size_t inline_size = 64;

  unique_function() noexcept = default;

  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, unique_function>>>
  unique_function(F&& f) {
    using T = std::decay_t<F>;
    if constexpr (fits_inline<T>) {
      ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
    } else {
      *reinterpret_cast<T**>(storage_) = new T(std::forward<F>(f));
    }
    ops_ = &ops_for<T>;
  }

  unique_function(unique_function&& other) noexcept : ops_(other.ops_) {
    if (ops_) ops_->move(other.storage_, storage_);
    other.ops_ = nullptr;
  }

  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      ops_ = other.ops_;
      if (ops_) ops_->move(other.storage_, storage_);
      other.ops_ = nullptr;
    }
    return *this;
  }

  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;
  ~unique_function() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  R operator()(Args... args) { return ops_->call(storage_, std::forward<Args>(args)...); }

 private:
  template <class T>
  static constexpr bool fits_inline = sizeof(T) <= inline_size &&
                                      alignof(T) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<T>;

  struct ops {
    R (*call)(void*, Args&&...);
    void (*move)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;
  };

  template <class T>
  static T& target(void* p) noexcept {
    if constexpr (fits_inline<T>) return *std::launder(static_cast<T*>(p));
    else return **static_cast<T**>(p);
  }

  // Static member function templates rather than lambdas: one function per operation and type
  // (a captureless lambda is two, its call operator and the function its pointer points to).
  template <class T>
  static R call_target(void* p, Args&&... args) {
    return target<T>(p)(std::forward<Args>(args)...);
  }
  template <class T>
  static void move_target(void* from, void* to) noexcept {
    if constexpr (fits_inline<T>) {
      ::new (to) T(std::move(target<T>(from)));
      target<T>(from).~T();
    } else {
      *static_cast<T**>(to) = *static_cast<T**>(from);
    }
  }
  template <class T>
  static void destroy_target(void* p) noexcept {
    if constexpr (fits_inline<T>) target<T>(p).~T();
    else delete *static_cast<T**>(p);
  }

  template <class T>
  static constexpr ops ops_for{&call_target<T>, &move_target<T>, &destroy_target<T>};

  void reset() noexcept {
    if (ops_) ops_->destroy(storage_);
    ops_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char storage_[inline_size];
  const ops* ops_ = nullptr;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
