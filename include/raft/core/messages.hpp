// raft/core/messages.hpp - the messages nodes exchange (thesis Figure 3.1, plus PreVote §9.6).
//
// Messages are plain values. A transport may lose, delay, duplicate or reorder them; it must not
// forge or corrupt them (the TCP codec checks framing, the node checks every field it uses).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/entry_vectors.hpp"
#include "raft/detail/type_list.hpp"

namespace raft {
inline namespace v1 {

/// RequestVote (§3.4) and its PreVote form (§9.6). A pre-vote asks "would you vote for me in
/// `term`?" without anyone changing term or vote.
struct vote_request {
  term_t term;              ///< candidate's term (for a pre-vote: the term it would campaign in)
  index_t last_log_index;   ///< index of candidate's last log entry (§3.6.1)
  term_t last_log_term;     ///< term of candidate's last log entry (§3.6.1)
  bool pre_vote = false;
  bool transfer = false;    ///< sent on the leader's TimeoutNow (§3.10): voters that hear from
                            ///< that leader grant it anyway
  friend bool operator==(const vote_request&, const vote_request&) = default;
};

struct vote_response {
  term_t term;              ///< responder's current term (for a granted pre-vote: the asked term)
  bool granted = false;
  bool pre_vote = false;
  friend bool operator==(const vote_response&, const vote_response&) = default;
};

/// AppendEntries (§3.5); with no entries it is a heartbeat.
struct append_request {
  term_t term;              ///< leader's term
  index_t prev_log_index;   ///< index of the entry immediately preceding `entries`
  term_t prev_log_term;     ///< term of that entry
  index_t leader_commit;    ///< leader's commit index
  std::vector<log_entry> entries;
  std::uint64_t round = 0;  ///< the leader's heartbeat round when sent, echoed in the reply; a
                            ///< quorum of echoes confirms leadership for ReadIndex (§6.4)
  bool quiesce = false;     ///< the leader's last heartbeat before its idle group goes quiet
                            ///< (options::quiesce): the follower stops its election timer
  friend bool operator==(const append_request&, const append_request&) = default;
};

/// Reply to AppendEntries. On success `match_index` is the highest index the follower has
/// durably stored and knows to match the leader's log. On rejection the hints let the leader
/// skip a whole conflicting term at once (fast backtracking, §3.5).
struct append_response {
  term_t term;              ///< follower's current term
  bool success = false;
  index_t match_index;      ///< success: durable matching prefix
  index_t rejected_index;   ///< rejection: the request's prev_log_index
  index_t conflict_index;   ///< rejection: first index of `conflict_term`, or last index + 1
  term_t conflict_term;     ///< rejection: follower's term at prev_log_index (0: it has no entry)
  std::uint64_t round = 0;  ///< the request's round
  friend bool operator==(const append_response&, const append_response&) = default;
};

/// InstallSnapshot (§5.3), one chunk. Every chunk names the whole snapshot, so a follower can
/// tell a resumed transfer from a new one; chunks are sent in order from the follower's
/// acknowledged offset, and a lost chunk is resent from there (never from zero).
struct install_snapshot_request {
  term_t term;              ///< leader's term
  snapshot_meta meta;       ///< which snapshot
  std::uint64_t offset = 0; ///< where `data` starts in the snapshot's bytes
  std::uint64_t size = 0;   ///< the snapshot's total size in bytes
  buffer data;              ///< the chunk
  friend bool operator==(const install_snapshot_request&, const install_snapshot_request&) = default;
};

/// Reply to a chunk: how many bytes of snapshot `index` the follower holds in order (the offset
/// of the next chunk it wants), and whether it has installed the whole snapshot.
struct install_snapshot_response {
  term_t term;
  index_t index;                ///< the snapshot's index
  std::uint64_t next_offset = 0;
  bool installed = false;
  friend bool operator==(const install_snapshot_response&, const install_snapshot_response&) = default;
};

/// Leadership transfer (§3.10): the leader tells an up-to-date target to start an election now.
struct timeout_now {
  term_t term;
  friend bool operator==(const timeout_now&, const timeout_now&) = default;
};

/// A follower asks the leader for a read index (§6.4.1 follower reads); `id` matches the reply.
struct read_index_request {
  term_t term;
  std::uint64_t id = 0;
  friend bool operator==(const read_index_request&, const read_index_request&) = default;
};

/// The leader's answer: on success, `index` is a commit index confirmed by a quorum after the
/// request arrived; the follower may read once it has applied that far.
struct read_index_response {
  term_t term;
  std::uint64_t id = 0;
  bool ok = false;
  index_t index;
  friend bool operator==(const read_index_response&, const read_index_response&) = default;
};

/// One message of any kind: a tagged union of the nine structs above, in the order of their
/// wire tags (raft::codec::message_type). Written out rather than a std::variant: every user's
/// translation unit instantiates the message type, and std::variant's layers of special members,
/// visitation tables and comparison templates were the largest single item left in the compile
/// cost of a node (docs/architecture.md, "What a node costs a user's build").
///
///   if (const auto* a = m.body.get_if<append_request>()) ...
///   m.body.visit([](const auto& b) { ... });
class message_body {
  using types = detail::type_list<vote_request, vote_response, append_request, append_response,
                                  install_snapshot_request, install_snapshot_response, timeout_now,
                                  read_index_request, read_index_response>;

 public:
  /// The number of kinds, and the kind number `I` (the wire tag minus one).
  static constexpr std::size_t size = types::size;
  template <std::size_t I>
  using alternative = typename detail::type_at<I, types>::type;
  /// Whether T is one of the kinds.
  template <class T>
  static constexpr bool holds_kind = types::template index_of<T>() < size;

 private:
  // Defined first: the members below deduce their return types from these.
  template <class T>
  T* as() noexcept {
    return std::launder(reinterpret_cast<T*>(raw_));
  }
  template <class T>
  const T* as() const noexcept {
    return std::launder(reinterpret_cast<const T*>(raw_));
  }
  template <std::size_t I, class Self>
  static auto& at(Self& self) noexcept {
    return *self.template as<alternative<I>>();
  }
  template <class Self, class F>
  static decltype(auto) visit_as(Self& self, F& f) {
    static_assert(size == 9, "a new message kind needs a case here");
    switch (self.index_) {
      case 0: return f(at<0>(self));
      case 1: return f(at<1>(self));
      case 2: return f(at<2>(self));
      case 3: return f(at<3>(self));
      case 4: return f(at<4>(self));
      case 5: return f(at<5>(self));
      case 6: return f(at<6>(self));
      case 7: return f(at<7>(self));
      default: return f(at<8>(self));
    }
  }

 public:
  /// Calls `f` with the message as the kind it holds (a switch: one jump).
  template <class F>
  decltype(auto) visit(F&& f) {
    return visit_as(*this, f);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return visit_as(*this, f);
  }

  /// A default vote_request, like a default std::variant.
  message_body() noexcept { ::new (static_cast<void*>(raw_)) vote_request{}; }
  template <class T>
    requires holds_kind<std::remove_cvref_t<T>>
  message_body(T&& v) noexcept(std::is_nothrow_constructible_v<std::remove_cvref_t<T>, T&&>)  // NOLINT: implicit, like a variant
      : index_(static_cast<std::uint8_t>(types::template index_of<std::remove_cvref_t<T>>())) {
    ::new (static_cast<void*>(raw_)) std::remove_cvref_t<T>(std::forward<T>(v));
  }
  message_body(const message_body& o) : index_(o.index_) {
    o.visit([this](const auto& b) { ::new (static_cast<void*>(raw_)) std::remove_cvref_t<decltype(b)>(b); });
  }
  message_body(message_body&& o) noexcept : index_(o.index_) { take(o); }
  message_body& operator=(const message_body& o) {
    if (this != &o) {
      message_body copy(o);
      *this = std::move(copy);
    }
    return *this;
  }
  message_body& operator=(message_body&& o) noexcept {
    if (this != &o) {
      destroy();
      index_ = o.index_;
      take(o);
    }
    return *this;
  }
  ~message_body() { destroy(); }

  /// The kind held: its position in the list (the wire tag minus one).
  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  template <class T>
  [[nodiscard]] bool holds() const noexcept {
    static_assert(holds_kind<T>, "not a message kind");
    return index_ == types::template index_of<T>();
  }
  /// The message as a T, or null if it holds another kind.
  template <class T>
  [[nodiscard]] T* get_if() noexcept {
    return holds<T>() ? as<T>() : nullptr;
  }
  template <class T>
  [[nodiscard]] const T* get_if() const noexcept {
    return holds<T>() ? as<T>() : nullptr;
  }
  /// Replaces the message with a default T and returns it.
  template <class T>
  T& emplace() {
    static_assert(holds_kind<T>, "not a message kind");
    destroy();
    index_ = static_cast<std::uint8_t>(types::template index_of<T>());
    return *::new (static_cast<void*>(raw_)) T{};
  }
  /// Replaces the message with a default one of kind number `k` (k < size).
  template <std::size_t I = 0>
  void emplace_kind(std::size_t k) {
    if constexpr (I + 1 < size) {
      if (k != I) return emplace_kind<I + 1>(k);
    }
    emplace<alternative<I>>();
  }

  friend bool operator==(const message_body& a, const message_body& b) {
    return a.index_ == b.index_ &&
           a.visit([&b](const auto& x) { return x == *b.as<std::remove_cvref_t<decltype(x)>>(); });
  }

 private:
  /// Move-constructs o's message into our storage (index_ already set).
  void take(message_body& o) noexcept {
    o.visit([this](auto& b) {
      using T = std::remove_cvref_t<decltype(b)>;
      static_assert(std::is_nothrow_move_constructible_v<T>, "message_body's moves are noexcept");
      ::new (static_cast<void*>(raw_)) T(std::move(b));
    });
  }
  void destroy() noexcept {
    visit([](auto& b) {
      using T = std::remove_cvref_t<decltype(b)>;
      b.~T();
    });
  }

  alignas(types::max_align()) std::byte raw_[types::max_size()];
  std::uint8_t index_ = 0;
};

/// A message with its addresses.
struct message {
  node_id from;
  node_id to;
  message_body body;
  group_id group{};  ///< the Raft group (0 unless the transport is a raft::group_transport)
  friend bool operator==(const message&, const message&) = default;
};

/// Gives the entry vector of an AppendEntries back for reuse (see detail::entry_vectors).
inline void recycle(message& m) {
  if (auto* r = m.body.get_if<append_request>()) detail::entry_vectors::give(std::move(r->entries));
}

/// The term a message carries.
[[nodiscard]] inline term_t term_of(const message_body& body) noexcept {
  return body.visit([](const auto& b) { return b.term; });
}

}  // namespace v1
}  // namespace raft
