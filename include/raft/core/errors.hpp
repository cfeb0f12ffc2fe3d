// raft/core/errors.hpp - how an operation fails, and the result type that carries it.
#pragma once

#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// Reasons an operation on a node fails.
enum class errc {
  not_leader = 1,   ///< this node is not the leader; `error::leader_hint` names the leader if known
  leadership_lost,  ///< the node stopped leading before it knew the entry committed: the
                    ///< outcome is unknown (the entry may still commit under the next leader)
  stopped,          ///< the node is stopping or stopped; for a proposal, its outcome is unknown
                    ///< (it may have committed without being applied here yet)
  busy,             ///< a limit was reached (for example too many pending proposals)
  change_in_progress,  ///< another membership change has not finished yet (one at a time)
  invalid_argument,    ///< the request makes no sense here (say, promoting a node that is not
                       ///< a learner, or a configuration without voters)
  timeout,             ///< gave up after an election timeout (leadership transfer, forwarded read)
  transferring,        ///< a leadership transfer is in progress: no new proposals or changes
  committed_result_unknown,  ///< the entry committed, but this node skipped applying it (it
                             ///< installed a snapshot that covers it), so it has no result for it
  cancelled,  ///< the caller cancelled the operation (through its completion handler's
              ///< cancellation slot) before the node finished it: the outcome is unknown. The
              ///< node carries on with it: a cancelled proposal may still commit and be applied
};

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::not_leader: return "not the leader";
      case errc::leadership_lost: return "leadership lost: the entry may or may not commit";
      case errc::stopped: return "node stopped";
      case errc::busy: return "too many pending operations";
      case errc::change_in_progress: return "another membership change is in progress";
      case errc::invalid_argument: return "invalid argument";
      case errc::timeout: return "timed out";
      case errc::transferring: return "leadership transfer in progress";
      case errc::committed_result_unknown: return "the entry committed; its result is not known here";
      case errc::cancelled: return "cancelled by the caller: the outcome is unknown (the operation may still take effect)";
    }
    return "unknown raft error";
  }
};

inline const std::error_category& error_category() noexcept {
  static const error_category_impl category;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// A failed operation: the reason, and for `not_leader` the leader this node knows of.
struct error {
  errc code;
  node_id leader_hint = no_node;

  [[nodiscard]] std::error_code error_code() const noexcept { return make_error_code(code); }
  [[nodiscard]] std::string message() const { return error_code().message(); }
  friend bool operator==(const error&, const error&) = default;
};

/// The value of a successful operation, or the `error` it failed with.
///
/// A tagged union written out rather than a `std::variant<T, error>`: every user's translation
/// unit instantiates it for each operation's value type, and std::variant's layers of special
/// members and visitation tables cost several times the compile time of these few functions.
template <class T>
class [[nodiscard]] result {
 public:
  /// Holds errc::stopped: the outcome of an operation that never completed (Asio needs a
  /// default value for abandoned operations).
  result() noexcept : error_{errc::stopped} {}
  result(T value) : ok_(true) { ::new (static_cast<void*>(&value_)) T(std::move(value)); }
  result(raft::error e) noexcept : error_(e) {}

  result(const result& other) { assign(other); }
  result(result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) { assign(std::move(other)); }
  result& operator=(const result& other) {
    if (this != &other) {
      reset();
      assign(other);
    }
    return *this;
  }
  result& operator=(result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &other) {
      reset();
      assign(std::move(other));
    }
    return *this;
  }
  ~result() { reset(); }

  [[nodiscard]] bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }

  /// The value; throws `std::system_error` if this holds an error.
  [[nodiscard]] T& value() & { check(); return value_; }
  [[nodiscard]] const T& value() const& { check(); return value_; }
  [[nodiscard]] T&& value() && { check(); return std::move(value_); }
  [[nodiscard]] T& operator*() & { return value(); }
  [[nodiscard]] T* operator->() { return &value(); }

  /// The error; the caller guarantees `!has_value()`.
  [[nodiscard]] const raft::error& error() const noexcept { return error_; }

 private:
  void check() const {
    if (!ok_) throw std::system_error(error_.error_code());
  }
  /// Makes this an error (errc::stopped) again, destroying the value it held.
  void reset() noexcept {
    if (ok_) {
      value_.~T();
      ok_ = false;
      ::new (static_cast<void*>(&error_)) raft::error{errc::stopped};
    }
  }
  /// Takes `other`'s value or error; this holds an error (as after reset()).
  template <class Other>
  void assign(Other&& other) {
    if (other.ok_) {
      ::new (static_cast<void*>(&value_)) T(std::forward<Other>(other).value_);
      ok_ = true;
    } else {
      ::new (static_cast<void*>(&error_)) raft::error(other.error_);
    }
  }

  union {
    T value_;
    raft::error error_;
  };
  bool ok_ = false;
};

}  // namespace v1
}  // namespace raft

template <>
struct std::is_error_code_enum<raft::errc> : std::true_type {};
