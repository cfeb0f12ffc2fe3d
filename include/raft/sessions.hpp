// raft/sessions.hpp - client sessions (thesis §6.3): a retried proposal is applied once.
//
// A proposal whose outcome the client does not learn (the leader crashed, the reply was lost,
// errc::leadership_lost or errc::stopped) may or may not have committed. Proposing it again is
// only safe if applying it twice is harmless. Client sessions make every command safe to retry:
// the client frames each command with its session id and a sequence number, and
// `session_state_machine<SM>` (a state machine wrapping yours) applies each (session, sequence)
// at most once, answering a retry of the last one with the result it cached the first time.
//
//   auto reg = co_await node.async_propose(raft::session_register().bytes());   // retry until it succeeds
//   raft::session_client s(reg->registered_id());
//   raft::buffer cmd = s.next(my_command);        // sequence 1; keep the bytes for retries
//   auto r = co_await node.async_propose(cmd.bytes());  // on an error, propose the same `cmd` again
//   if (r && r->has_value()) use(r->value());     // SM's result; SM applied `cmd` exactly once
//
// Frame encoding (all integers little-endian):
//   offset 0  'R' 'S' 0x01    magic and format version (3 bytes)
//   offset 3  kind            1 request, 2 register, 3 unregister, 4 sessionless
//   request:      u64 session id, u64 sequence (>= 1), then the inner command (the rest)
//   register:     nothing more (exactly 4 bytes)
//   unregister:   u64 session id (exactly 12 bytes)
//   sessionless:  the inner command (the rest), applied without a session
// Anything else, including an unframed command, is malformed: it changes nothing and returns
// session_errc::malformed, the same on every node.
//
// See docs/sessions.md for the guarantees and the limits.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "raft/concepts.hpp"
#include "raft/core/buffer.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"

namespace raft {
inline namespace v1 {

// ---- ids and errors --------------------------------------------------------------------------

struct client_id_tag {};
/// A client session's id. Assigned by the cluster when the session registers: it is the log
/// index of the register command, so it is unique for the life of the log. 0 is never an id.
using client_id = strong_number<client_id_tag>;

/// Why a session command was not applied. Every replica returns the same error for the same
/// command at the same index.
enum class session_errc {
  malformed = 1,  ///< not a well-formed session frame (or an unframed command); nothing changed
  expired,        ///< no such session: evicted, unregistered, or never registered. The outcome
                  ///< of an earlier attempt of this request is unknown; register again.
  stale,          ///< the session has already applied a later sequence, and this request's
                  ///< result is no longer kept. Not applied now; whether an earlier attempt
                  ///< was applied is not known from this reply.
};

class session_error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft.session"; }
  std::string message(int c) const override {
    switch (static_cast<session_errc>(c)) {
      case session_errc::malformed: return "malformed session command";
      case session_errc::expired: return "session expired or unknown";
      case session_errc::stale: return "stale retry: a later request of the session was applied";
    }
    return "unknown session error";
  }
};

inline const std::error_category& session_error_category() noexcept {
  static const session_error_category_impl category;
  return category;
}

inline std::error_code make_error_code(session_errc e) noexcept {
  return {static_cast<int>(e), session_error_category()};
}

// ---- frames ----------------------------------------------------------------------------------

enum class session_frame_kind : std::uint8_t { request = 1, register_client = 2, unregister = 3, sessionless = 4 };

/// A decoded frame. `payload` points into the decoded bytes.
struct session_frame {
  session_frame_kind kind;
  client_id client;               ///< request, unregister
  std::uint64_t sequence = 0;     ///< request
  std::span<const std::byte> payload;  ///< request, sessionless
};

namespace detail::sessions {

inline constexpr std::byte magic[3] = {std::byte{'R'}, std::byte{'S'}, std::byte{0x01}};
inline constexpr std::size_t prefix_size = 4;
static_assert(prefix_size == std::size(magic) + 1, "a frame starts with the magic and a kind byte");

inline std::vector<std::byte> prefix(session_frame_kind kind, std::size_t extra) {
  // Byte by byte: GCC 12 reports false -Wstringop-overflow on a range insert() into a vector
  // that was just reserved or cleared (at -O3 here, at -O2 in stage_next below).
  std::vector<std::byte> out;
  out.reserve(prefix_size + extra);
  for (std::byte b : magic) out.push_back(b);
  out.push_back(static_cast<std::byte>(kind));
  return out;
}

}  // namespace detail::sessions

/// Frames `payload` as request `sequence` of session `client`. Sequences start at 1 and strictly
/// increase per session; a retry reuses the same sequence (and payload). Throws
/// std::invalid_argument for client 0 or sequence 0.
[[nodiscard]] inline buffer session_command(client_id client, std::uint64_t sequence,
                                            std::span<const std::byte> payload) {
  if (client.value == 0) throw std::invalid_argument("session_command: client id 0 is not a session");
  if (sequence == 0) throw std::invalid_argument("session_command: sequences start at 1");
  auto out = detail::sessions::prefix(session_frame_kind::request, 16 + payload.size());
  detail::append_u64(out, client.value);
  detail::append_u64(out, sequence);
  out.insert(out.end(), payload.begin(), payload.end());
  return buffer{out};
}
[[nodiscard]] inline buffer session_command(client_id client, std::uint64_t sequence, const buffer& payload) {
  return session_command(client, sequence, payload.bytes());
}

/// Opens a session. Its result's registered_id() is the new session's id.
[[nodiscard]] inline buffer session_register() {
  return buffer{detail::sessions::prefix(session_frame_kind::register_client, 0)};
}

/// Closes a session and frees its slot; later requests of it get session_errc::expired.
[[nodiscard]] inline buffer session_unregister(client_id client) {
  auto out = detail::sessions::prefix(session_frame_kind::unregister, 8);
  detail::append_u64(out, client.value);
  return buffer{out};
}

/// Frames `payload` to be applied without a session: no deduplication, a retry may apply it
/// again. For commands that are harmless to repeat (reads, idempotent writes).
[[nodiscard]] inline buffer sessionless_command(std::span<const std::byte> payload) {
  auto out = detail::sessions::prefix(session_frame_kind::sessionless, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return buffer{out};
}
[[nodiscard]] inline buffer sessionless_command(const buffer& payload) {
  return sessionless_command(payload.bytes());
}

/// Decodes a frame; std::nullopt if `in` is not a well-formed frame.
[[nodiscard]] inline std::optional<session_frame> decode_session_frame(std::span<const std::byte> in) {
  using namespace detail::sessions;
  if (in.size() < prefix_size || !std::equal(std::begin(magic), std::end(magic), in.begin()))
    return std::nullopt;
  const auto kind = static_cast<std::uint8_t>(in[3]);
  const auto rest = in.subspan(prefix_size);
  switch (kind) {
    case std::uint8_t(session_frame_kind::request): {
      if (rest.size() < 16) return std::nullopt;
      const client_id c{detail::load_u64(rest.data())};
      const std::uint64_t seq = detail::load_u64(rest.data() + 8);
      if (c.value == 0 || seq == 0) return std::nullopt;
      return session_frame{session_frame_kind::request, c, seq, rest.subspan(16)};
    }
    case std::uint8_t(session_frame_kind::register_client):
      if (!rest.empty()) return std::nullopt;
      return session_frame{session_frame_kind::register_client, client_id{}, 0, {}};
    case std::uint8_t(session_frame_kind::unregister): {
      if (rest.size() != 8) return std::nullopt;
      const client_id c{detail::load_u64(rest.data())};
      if (c.value == 0) return std::nullopt;
      return session_frame{session_frame_kind::unregister, c, 0, {}};
    }
    case std::uint8_t(session_frame_kind::sessionless):
      return session_frame{session_frame_kind::sessionless, client_id{}, 0, rest};
    default:
      return std::nullopt;
  }
}

/// Client-side bookkeeping for one session: its id and the next sequence number.
class session_client {
 public:
  explicit session_client(client_id id, std::uint64_t next_sequence = 1) : id_(id), next_(next_sequence) {
    if (id.value == 0) throw std::invalid_argument("session_client: client id 0 is not a session");
    if (next_sequence == 0) throw std::invalid_argument("session_client: sequences start at 1");
  }
  [[nodiscard]] client_id id() const noexcept { return id_; }
  [[nodiscard]] std::uint64_t next_sequence() const noexcept { return next_; }

  /// Frames `payload` as the session's next request. Keep the returned bytes: while the outcome
  /// is unknown, propose exactly them again (a new call to next() would be a new request).
  [[nodiscard]] buffer next(std::span<const std::byte> payload) { return session_command(id_, next_++, payload); }
  [[nodiscard]] buffer next(const buffer& payload) { return next(payload.bytes()); }

 private:
  client_id id_;
  std::uint64_t next_;
};

// ---- the apply result ------------------------------------------------------------------------

/// What session_state_machine::apply returns (and so what node::async_propose completes with):
/// - applied:      the request was applied now; value() is the inner state machine's result;
/// - replayed:     a retry of the session's last applied request; value() is the result cached
///                 when it was applied (the inner state machine was not called again);
/// - registered:   a register command; registered_id() is the new session's id;
/// - unregistered: an unregister command closed the session;
/// - failed:       error() says why; nothing was applied.
template <class R>
class session_result {
 public:
  enum class kind : std::uint8_t { applied, replayed, registered, unregistered, failed };

  static session_result make_applied(R v) { return session_result(kind::applied, std::move(v)); }
  static session_result make_replayed(R v) { return session_result(kind::replayed, std::move(v)); }
  static session_result make_registered(client_id id) {
    session_result r(kind::registered);
    r.id_ = id;
    return r;
  }
  static session_result make_unregistered() { return session_result(kind::unregistered); }
  static session_result make_failed(session_errc e) {
    session_result r(kind::failed);
    r.error_ = e;
    return r;
  }

  [[nodiscard]] kind outcome() const noexcept { return kind_; }
  /// True when value() holds the inner state machine's result (applied or replayed).
  [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  /// True when the result was cached: this request had been applied by an earlier attempt.
  [[nodiscard]] bool replayed() const noexcept { return kind_ == kind::replayed; }
  /// The session error, if the command failed.
  [[nodiscard]] std::optional<session_errc> error() const noexcept {
    if (kind_ != kind::failed) return std::nullopt;
    return error_;
  }
  /// The new session's id for a register command; client_id{0} otherwise.
  [[nodiscard]] client_id registered_id() const noexcept { return id_; }

  /// The inner result. Throws std::system_error (a session_errc) if the command failed, and
  /// std::logic_error for a register or unregister outcome.
  [[nodiscard]] R& value() & { check(); return *value_; }
  [[nodiscard]] const R& value() const& { check(); return *value_; }
  [[nodiscard]] R&& value() && { check(); return std::move(*value_); }
  [[nodiscard]] R& operator*() & { return value(); }
  [[nodiscard]] const R& operator*() const& { return value(); }
  [[nodiscard]] R* operator->() { return &value(); }
  [[nodiscard]] const R* operator->() const { return &value(); }

  friend bool operator==(const session_result& a, const session_result& b)
    requires std::equality_comparable<R>
  {
    return a.kind_ == b.kind_ && a.value_ == b.value_ && a.id_ == b.id_ && a.error_ == b.error_;
  }

 private:
  explicit session_result(kind k) : kind_(k) {}
  session_result(kind k, R v) : kind_(k), value_(std::in_place, std::move(v)) {}

  void check() const {
    if (value_) return;
    if (kind_ == kind::failed) throw std::system_error(make_error_code(error_));
    throw std::logic_error("session_result: a register/unregister outcome holds no value");
  }

  kind kind_;
  std::optional<R> value_;
  client_id id_{};
  session_errc error_{};
};

// ---- result codecs (for snapshots) -----------------------------------------------------------

/// How a cached result is written into a snapshot. A session table's snapshot holds each
/// session's last result, so session_state_machine<SM> is a snapshot_state_machine only if SM
/// is one and its result type has a codec. Provided: integral and enum types, std::string,
/// std::vector<std::byte>, raft::buffer, and std::optional of any of these. For another type,
/// specialize `raft::session_result_codec<T>` with
///   static void encode(const T&, std::vector<std::byte>& out);   // append the bytes
///   static std::optional<T> decode(std::span<const std::byte>);  // std::nullopt if invalid
/// (decode gets exactly the bytes encode appended).
template <class T>
struct session_result_codec;

template <class T>
concept session_result_encodable =
    requires(const T& v, std::vector<std::byte>& out, std::span<const std::byte> in) {
      session_result_codec<T>::encode(v, out);
      { session_result_codec<T>::decode(in) } -> std::same_as<std::optional<T>>;
    };

template <class T>
  requires(std::is_integral_v<T> || std::is_enum_v<T>)
struct session_result_codec<T> {
  static std::uint64_t widen(T v) noexcept {
    if constexpr (std::is_enum_v<T>) return static_cast<std::uint64_t>(static_cast<std::underlying_type_t<T>>(v));
    else return static_cast<std::uint64_t>(v);
  }
  static void encode(const T& v, std::vector<std::byte>& out) { detail::append_u64(out, widen(v)); }
  static std::optional<T> decode(std::span<const std::byte> in) {
    if (in.size() != 8) return std::nullopt;
    const std::uint64_t u = detail::load_u64(in.data());
    T v;
    if constexpr (std::is_enum_v<T>) v = static_cast<T>(static_cast<std::underlying_type_t<T>>(u));
    else v = static_cast<T>(u);
    if (widen(v) != u) return std::nullopt;  // out of the type's range
    return v;
  }
};

template <>
struct session_result_codec<std::string> {
  static void encode(const std::string& v, std::vector<std::byte>& out) {
    for (char c : v) out.push_back(static_cast<std::byte>(c));
  }
  static std::optional<std::string> decode(std::span<const std::byte> in) {
    return std::string(reinterpret_cast<const char*>(in.data()), in.size());
  }
};

template <>
struct session_result_codec<std::vector<std::byte>> {
  static void encode(const std::vector<std::byte>& v, std::vector<std::byte>& out) {
    out.insert(out.end(), v.begin(), v.end());
  }
  static std::optional<std::vector<std::byte>> decode(std::span<const std::byte> in) {
    return std::vector<std::byte>(in.begin(), in.end());
  }
};

template <>
struct session_result_codec<buffer> {
  static void encode(const buffer& v, std::vector<std::byte>& out) {
    out.insert(out.end(), v.bytes().begin(), v.bytes().end());
  }
  static std::optional<buffer> decode(std::span<const std::byte> in) { return buffer{in}; }
};

template <session_result_encodable T>
struct session_result_codec<std::optional<T>> {
  static void encode(const std::optional<T>& v, std::vector<std::byte>& out) {
    out.push_back(std::byte{v.has_value() ? std::uint8_t{1} : std::uint8_t{0}});
    if (v) session_result_codec<T>::encode(*v, out);
  }
  static std::optional<std::optional<T>> decode(std::span<const std::byte> in) {
    if (in.empty()) return std::nullopt;
    if (in[0] == std::byte{0}) {
      if (in.size() != 1) return std::nullopt;
      return std::optional<T>{};
    }
    if (in[0] != std::byte{1}) return std::nullopt;
    auto inner = session_result_codec<T>::decode(in.subspan(1));
    if (!inner) return std::nullopt;
    return std::optional<T>{std::move(*inner)};
  }
};

// ---- the state machine -----------------------------------------------------------------------

/// What the table knows of one session.
struct session_info {
  std::uint64_t last_sequence = 0;  ///< last applied request; 0 before the first
  index_t last_used;                ///< log index of the session's last command (LRU order)
  friend bool operator==(const session_info&, const session_info&) = default;
};

/// A state machine that applies each session request at most once, wrapping SM (any
/// raft::state_machine whose result can be copied). It is itself a raft::state_machine, and a
/// raft::snapshot_state_machine when SM is one and SM's result has a session_result_codec.
///
/// Commands must be frames (session_command, session_register, session_unregister,
/// sessionless_command); apply() returns a session_result<apply_result_t<SM>>. For a request:
///   - an unknown session                       -> failed(expired), nothing applied;
///   - a sequence above the session's last one  -> SM applies it; result cached, applied(result);
///   - the session's last sequence (a retry)    -> replayed(cached result), SM not called;
///   - a sequence below the session's last one  -> failed(stale), nothing applied.
/// One request per session is outstanding at a time: only the last result is kept. A client
/// that needs concurrency opens several sessions.
///
/// The table holds at most `max_sessions` sessions. Registering one more evicts the session
/// whose last command has the lowest log index (least recently used); every replica evicts the
/// same one, since it depends on the log only. Every replica must use the same max_sessions.
template <state_machine SM>
  requires std::copy_constructible<apply_result_t<SM>>
class session_state_machine {
 public:
  using inner_type = SM;
  using inner_result = apply_result_t<SM>;
  using result_type = session_result<inner_result>;

  static constexpr std::size_t default_max_sessions = 1024;

  /// A default-constructed SM and default_max_sessions (testing::cluster constructs this way).
  session_state_machine() : session_state_machine(default_max_sessions) {}

  /// At most `max_sessions` (>= 1) sessions; the inner state machine is SM(args...).
  template <class... Args>
    requires std::constructible_from<SM, Args...>
  explicit session_state_machine(std::size_t max_sessions, Args&&... args)
      : inner_(std::forward<Args>(args)...), max_sessions_(max_sessions) {
    if (max_sessions == 0) throw std::invalid_argument("session_state_machine: max_sessions must be at least 1");
  }

  /// Applies one committed frame (raft::state_machine). Never throws for any bytes; an
  /// exception from SM::apply propagates (the node fail-stops).
  result_type apply(index_t index, std::span<const std::byte> command) {
    const auto frame = decode_session_frame(command);
    if (!frame) return result_type::make_failed(session_errc::malformed);
    switch (frame->kind) {
      case session_frame_kind::sessionless:
        return result_type::make_applied(inner_.apply(index, frame->payload));
      case session_frame_kind::register_client: {
        const client_id id{index.value};
        while (sessions_.size() >= max_sessions_) evict_one();
        sessions_.emplace(id, entry{0, index, nullptr});
        lru_.emplace(index, id);
        return result_type::make_registered(id);
      }
      case session_frame_kind::unregister: {
        auto it = sessions_.find(frame->client);
        if (it == sessions_.end()) return result_type::make_failed(session_errc::expired);
        lru_.erase(it->second.last_used);
        sessions_.erase(it);
        return result_type::make_unregistered();
      }
      case session_frame_kind::request:
        break;
    }
    auto it = sessions_.find(frame->client);
    if (it == sessions_.end()) return result_type::make_failed(session_errc::expired);
    entry& s = it->second;
    if (frame->sequence < s.last_sequence) {
      touch(frame->client, s, index);
      return result_type::make_failed(session_errc::stale);
    }
    if (frame->sequence == s.last_sequence) {
      touch(frame->client, s, index);
      return result_type::make_replayed(*s.result);
    }
    // New request: apply first, so a throwing SM leaves the table as it was.
    inner_result r = inner_.apply(index, frame->payload);
    s.result = std::make_shared<const inner_result>(r);
    s.last_sequence = frame->sequence;
    touch(frame->client, s, index);
    return result_type::make_applied(std::move(r));
  }

  // ---- snapshots ------------------------------------------------------------------------------

  template <class InnerSource>
  class source;
  template <class InnerSink>
  class sink;

  /// A snapshot_source of the sessions and the inner state as of now: the session table
  /// (streamed one session at a time), then the inner snapshot's bytes. Later applies do not
  /// change it (cached results are immutable and shared; the inner source is SM's own).
  /// Format (little-endian): "RAFTSESS", u8 version 1, u64 session count, then per session in
  /// LRU order: u64 id, u64 last sequence, u64 last used index, u8 has result, u64 result
  /// length, the result's codec bytes; then the inner snapshot to the end.
  [[nodiscard]] auto snapshot()
    requires snapshot_state_machine<SM> && session_result_encodable<inner_result>
  {
    using inner_source = std::decay_t<decltype(inner_.snapshot())>;
    std::vector<typename source<inner_source>::record> records;
    records.reserve(sessions_.size());
    for (const auto& [used, id] : lru_) {
      const entry& e = sessions_.at(id);
      records.push_back({id, e.last_sequence, used, e.result});
    }
    return source<inner_source>(std::move(records), inner_.snapshot());
  }

  /// A snapshot_sink that replaces the sessions and the inner state with a snapshot's. It
  /// throws std::runtime_error from write() or finish() on bytes that are not such a snapshot;
  /// until finish() succeeds, nothing of this object changes. The sink refers to this object,
  /// which must stay where it is (not moved or destroyed) until the sink is gone.
  [[nodiscard]] auto restore()
    requires snapshot_state_machine<SM> && session_result_encodable<inner_result>
  {
    using inner_sink = std::decay_t<decltype(inner_.restore())>;
    return sink<inner_sink>(*this, inner_.restore());
  }

  // ---- observers ------------------------------------------------------------------------------

  [[nodiscard]] SM& inner() noexcept { return inner_; }
  [[nodiscard]] const SM& inner() const noexcept { return inner_; }
  [[nodiscard]] std::size_t max_sessions() const noexcept { return max_sessions_; }
  [[nodiscard]] std::size_t session_count() const noexcept { return sessions_.size(); }
  /// What the table holds for session `id`, or std::nullopt.
  [[nodiscard]] std::optional<session_info> session(client_id id) const {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::nullopt;
    return session_info{it->second.last_sequence, it->second.last_used};
  }
  /// Sessions evicted to make room, since this object was constructed (not part of snapshots).
  [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct entry {
    std::uint64_t last_sequence = 0;
    index_t last_used;
    std::shared_ptr<const inner_result> result;  ///< null until the first request is applied
  };

  void touch(client_id id, entry& s, index_t index) {
    lru_.erase(s.last_used);
    s.last_used = index;
    lru_.emplace(index, id);
  }

  void evict_one() {
    auto oldest = lru_.begin();
    sessions_.erase(oldest->second);
    lru_.erase(oldest);
    ++evictions_;
  }

  SM inner_;
  std::size_t max_sessions_;
  std::unordered_map<client_id, entry> sessions_;
  std::map<index_t, client_id> lru_;  ///< last used index -> session; begin() is evicted first
  std::uint64_t evictions_ = 0;
};

namespace detail::sessions {
inline constexpr std::byte snapshot_magic[8] = {std::byte{'R'}, std::byte{'A'}, std::byte{'F'}, std::byte{'T'},
                                                std::byte{'S'}, std::byte{'E'}, std::byte{'S'}, std::byte{'S'}};
inline constexpr std::uint8_t snapshot_version = 1;
inline constexpr std::size_t snapshot_header_size = 8 + 1 + 8;
inline constexpr std::size_t record_fixed_size = 8 + 8 + 8 + 1 + 8;
}  // namespace detail::sessions

template <state_machine SM>
  requires std::copy_constructible<apply_result_t<SM>>
template <class InnerSource>
class session_state_machine<SM>::source {
 public:
  struct record {
    client_id id;
    std::uint64_t last_sequence;
    index_t last_used;
    std::shared_ptr<const inner_result> result;
  };

  source(std::vector<record> records, InnerSource inner) : records_(std::move(records)), inner_(std::move(inner)) {}

  /// Copies up to buf.size() next bytes into `buf`; 0 means the end.
  std::size_t read(std::span<std::byte> buf) {
    std::size_t n = 0;
    while (n < buf.size()) {
      if (staged_ == stage_.size() && !stage_next()) break;
      const std::size_t k = std::min(buf.size() - n, stage_.size() - staged_);
      std::copy_n(stage_.begin() + static_cast<std::ptrdiff_t>(staged_), k, buf.begin() + static_cast<std::ptrdiff_t>(n));
      staged_ += k;
      n += k;
    }
    while (n < buf.size()) {
      const std::size_t k = inner_.read(buf.subspan(n));
      if (k == 0) break;
      n += k;
    }
    return n;
  }

 private:
  /// Stages the next piece of the session table; false once the table is all read.
  bool stage_next() {
    using namespace detail::sessions;
    stage_.clear();
    staged_ = 0;
    if (!header_done_) {
      header_done_ = true;
      for (std::byte b : snapshot_magic) stage_.push_back(b);  // not insert(): see prefix()
      stage_.push_back(std::byte{snapshot_version});
      detail::append_u64(stage_, records_.size());
      return true;
    }
    if (next_ == records_.size()) {
      stage_.shrink_to_fit();
      return false;
    }
    record& r = records_[next_++];
    detail::append_u64(stage_, r.id.value);
    detail::append_u64(stage_, r.last_sequence);
    detail::append_u64(stage_, r.last_used.value);
    stage_.push_back(std::byte{r.result ? std::uint8_t{1} : std::uint8_t{0}});
    const std::size_t len_at = stage_.size();
    detail::append_u64(stage_, 0);
    if (r.result) {
      session_result_codec<inner_result>::encode(*r.result, stage_);
      const std::uint64_t len = stage_.size() - len_at - 8;
      detail::store_u64(stage_.data() + len_at, len);
    }
    r.result.reset();  // read once: let go of it
    return true;
  }

  std::vector<record> records_;
  InnerSource inner_;
  std::vector<std::byte> stage_;
  std::size_t staged_ = 0;  ///< bytes of stage_ already handed out
  std::size_t next_ = 0;    ///< next record to stage
  bool header_done_ = false;
};

template <state_machine SM>
  requires std::copy_constructible<apply_result_t<SM>>
template <class InnerSink>
class session_state_machine<SM>::sink {
 public:
  sink(session_state_machine& owner, InnerSink inner) : owner_(&owner), inner_(std::move(inner)) {}

  /// Takes the snapshot's next bytes. Throws std::runtime_error on a malformed session table.
  void write(std::span<const std::byte> bytes) {
    while (!bytes.empty() && phase_ != phase::inner) {
      const std::size_t k = std::min(bytes.size(), need_ - pending_.size());
      pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(k));
      bytes = bytes.subspan(k);
      if (pending_.size() == need_) take();
    }
    if (!bytes.empty()) inner_.write(bytes);
  }

  /// Replaces the owner's sessions and inner state with the snapshot's.
  void finish() {
    if (phase_ != phase::inner) fail("the snapshot ends inside the session table");
    inner_.finish();
    owner_->sessions_ = std::move(sessions_);
    owner_->lru_ = std::move(lru_);
    while (owner_->sessions_.size() > owner_->max_sessions_) owner_->evict_one();
  }

 private:
  enum class phase { header, record, result, inner };

  [[noreturn]] static void fail(const char* what) {
    throw std::runtime_error(std::string("session snapshot: ") + what);
  }

  /// pending_ holds need_ bytes: consume them and set what comes next.
  void take() {
    using namespace detail::sessions;
    const std::span<const std::byte> p{pending_};
    switch (phase_) {
      case phase::header:
        if (!std::equal(std::begin(snapshot_magic), std::end(snapshot_magic), p.begin()))
          fail("not a session snapshot");
        if (static_cast<std::uint8_t>(p[8]) != snapshot_version) fail("unknown version");
        remaining_ = detail::load_u64(p.data() + 9);
        break;
      case phase::record: {
        current_ = {client_id{detail::load_u64(p.data())}, detail::load_u64(p.data() + 8),
                    index_t{detail::load_u64(p.data() + 16)}};
        const auto has = static_cast<std::uint8_t>(p[24]);
        result_len_ = detail::load_u64(p.data() + 25);
        if (current_.id.value == 0 || current_.last_used.value < current_.id.value) fail("invalid session");
        if (has > 1 || (has == 0) != (current_.last_sequence == 0) || (has == 0 && result_len_ != 0))
          fail("invalid session result");
        if (has == 1) {
          pending_.clear();
          phase_ = phase::result;
          need_ = result_len_;  // filled as bytes arrive; never reserved up front
          if (need_ != 0) return;
          take();
          return;
        }
        add(nullptr);
        break;
      }
      case phase::result: {
        auto r = session_result_codec<inner_result>::decode(p);
        if (!r) fail("a cached result does not decode");
        add(std::make_shared<const inner_result>(std::move(*r)));
        break;
      }
      case phase::inner:
        break;
    }
    pending_.clear();
    if (remaining_ == 0) {
      phase_ = phase::inner;
      pending_.shrink_to_fit();
      return;
    }
    --remaining_;
    phase_ = phase::record;
    need_ = detail::sessions::record_fixed_size;
  }

  void add(std::shared_ptr<const inner_result> result) {
    if (!sessions_.emplace(current_.id, entry{current_.last_sequence, current_.last_used, std::move(result)}).second)
      fail("a session appears twice");
    if (!lru_.emplace(current_.last_used, current_.id).second) fail("two sessions share a last used index");
  }

  struct pending_record {
    client_id id;
    std::uint64_t last_sequence = 0;
    index_t last_used;
  };

  session_state_machine* owner_;
  InnerSink inner_;
  phase phase_ = phase::header;
  std::size_t need_ = detail::sessions::snapshot_header_size;
  std::vector<std::byte> pending_;
  std::uint64_t remaining_ = 0;  ///< records still to read after the current one
  pending_record current_;
  std::uint64_t result_len_ = 0;
  std::unordered_map<client_id, entry> sessions_;
  std::map<index_t, client_id> lru_;
};

}  // namespace v1
}  // namespace raft

template <>
struct std::is_error_code_enum<raft::session_errc> : std::true_type {};
