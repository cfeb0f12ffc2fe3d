// raft/core/errors.hpp - how an operation fails, and the result type that carries it.
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// Reasons an operation on a node fails.
enum class errc {
  not_leader = 1,   ///< this node is not the leader; `error::leader_hint` names the leader if known
  leadership_lost,  ///< the node stopped leading before the entry committed: the outcome is
                    ///< unknown (the entry may still commit under the next leader)
  stopped,          ///< the node is stopping or stopped; for a proposal, its outcome is unknown
                    ///< (it may have committed without being applied here yet)
  busy,             ///< a limit was reached (for example too many pending proposals)
  change_in_progress,  ///< another membership change has not finished yet (one at a time)
  invalid_argument,    ///< the request makes no sense here (say, promoting a node that is not
                       ///< a learner, or a configuration without voters)
  timeout,             ///< gave up after an election timeout (leadership transfer, forwarded read)
  transferring,        ///< a leadership transfer is in progress: no new proposals or changes
};

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::not_leader: return "not the leader";
      case errc::leadership_lost: return "leadership lost before the entry committed";
      case errc::stopped: return "node stopped";
      case errc::busy: return "too many pending operations";
      case errc::change_in_progress: return "another membership change is in progress";
      case errc::invalid_argument: return "invalid argument";
      case errc::timeout: return "timed out";
      case errc::transferring: return "leadership transfer in progress";
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
template <class T>
class [[nodiscard]] result {
 public:
  /// Holds errc::stopped: the outcome of an operation that never completed (Asio needs a
  /// default value for abandoned operations).
  result() : v_(std::in_place_index<1>, raft::error{errc::stopped}) {}
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  result(raft::error e) : v_(std::in_place_index<1>, e) {}

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; throws `std::system_error` if this holds an error.
  [[nodiscard]] T& value() & { check(); return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { check(); return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { check(); return std::get<0>(std::move(v_)); }
  [[nodiscard]] T& operator*() & { return value(); }
  [[nodiscard]] T* operator->() { return &value(); }

  /// The error; the caller guarantees `!has_value()`.
  [[nodiscard]] const raft::error& error() const { return std::get<1>(v_); }

 private:
  void check() const {
    if (!has_value()) throw std::system_error(std::get<1>(v_).error_code());
  }
  std::variant<T, raft::error> v_;
};

}  // namespace v1
}  // namespace raft

template <>
struct std::is_error_code_enum<raft::errc> : std::true_type {};
