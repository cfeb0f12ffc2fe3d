// raft/transport/codec.hpp - the versioned binary wire format of raft::message.
//
// Standard C++ only (no Asio): usable alone, by a transport of your own or a fuzzer.
// The format is described byte by byte in docs/transport.md. In short:
//   frame   = u32 body_length, body                      (the stream framing; body_length <= limit)
//   body    = u8 version, u8 type, u64 group, u64 from, u64 to, fields of the type, nothing after them
//   integers are little-endian and fixed-width; flags are one byte with unused bits zero.
//
// Decoding never trusts its input: every length and count is checked against the bytes that are
// actually left before anything is allocated, a frame's length is checked against the limit
// before its body is read, and any input that is not exactly one well-formed body (truncated,
// oversized, unknown type, other version, unknown flag bits or entry kind, bytes left over) is
// rejected with a std::error_code of raft::codec_errc. The encoding is canonical: a body that
// decodes re-encodes to the same bytes.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/configuration.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"

namespace raft {
inline namespace v1 {

/// Why a frame or body was rejected.
enum class codec_errc {
  truncated = 1,       ///< the input ends before the message does
  oversized,           ///< a frame's length prefix exceeds the frame limit
  unknown_type,        ///< the type tag names no message type
  wrong_version,       ///< the body was written by another codec version
  trailing_bytes,      ///< bytes left after a complete message
  invalid_value,       ///< a flag byte with unknown bits, an unknown entry kind, reserved bytes
  bad_magic,           ///< a handshake that does not start with the magic bytes
};

namespace detail {
class codec_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft.codec"; }
  std::string message(int c) const override {
    switch (static_cast<codec_errc>(c)) {
      case codec_errc::truncated: return "truncated message";
      case codec_errc::oversized: return "frame length exceeds the limit";
      case codec_errc::unknown_type: return "unknown message type";
      case codec_errc::wrong_version: return "unsupported codec version";
      case codec_errc::trailing_bytes: return "trailing bytes after the message";
      case codec_errc::invalid_value: return "invalid field value";
      case codec_errc::bad_magic: return "not a raft handshake (bad magic)";
    }
    return "unknown codec error";
  }
};
}  // namespace detail

[[nodiscard]] inline const std::error_category& codec_category() noexcept {
  static const detail::codec_category_impl category;
  return category;
}
[[nodiscard]] inline std::error_code make_error_code(codec_errc e) noexcept {
  return {static_cast<int>(e), codec_category()};
}

}  // namespace v1
}  // namespace raft

template <>
struct std::is_error_code_enum<raft::codec_errc> : std::true_type {};

namespace raft {
inline namespace v1 {
namespace codec {

/// The version this codec writes and the only one it reads. Bump it for any change of layout.
/// (Refused: version 1 has only the first four message types and no round fields; version 2 no
/// group.)
inline constexpr std::uint8_t version = 3;

/// The type tags (byte 1 of a body), in the order of raft::message_body's kinds.
enum class message_type : std::uint8_t {
  vote_request = 1,
  vote_response = 2,
  append_request = 3,
  append_response = 4,
  install_snapshot_request = 5,
  install_snapshot_response = 6,
  timeout_now = 7,
  read_index_request = 8,
  read_index_response = 9,
};
inline constexpr std::uint8_t max_message_type = 9;
static_assert(message_body::size == max_message_type);

/// Bytes of the frame's length prefix.
inline constexpr std::size_t frame_header_bytes = 4;
/// Bytes every body starts with: version, type, group, from, to.
inline constexpr std::size_t body_header_bytes = 1 + 1 + 8 + 8 + 8;
/// Bytes of one log entry on the wire, besides its payload: term, index, kind, payload length.
inline constexpr std::size_t entry_header_bytes = 8 + 8 + 1 + 4;
/// The default frame limit (a frame's body may not be longer).
inline constexpr std::size_t default_max_frame_bytes = std::size_t{16} << 20;

namespace detail {

// The writer's output cursor: each put writes at `p` and moves it past what it wrote.
inline void put_u8(std::byte*& p, std::uint8_t v) noexcept { *p++ = std::byte{v}; }
inline void put_u32(std::byte*& p, std::uint32_t v) noexcept { raft::detail::store_u32(p, v), p += 4; }
inline void put_u64(std::byte*& p, std::uint64_t v) noexcept { raft::detail::store_u64(p, v), p += 8; }

/// A bounds-checked reader over a span. Every read checks what is left first.
class reader {
 public:
  explicit reader(std::span<const std::byte> in) noexcept : in_(in) {}
  [[nodiscard]] std::size_t left() const noexcept { return in_.size(); }
  bool u8(std::uint8_t& v) noexcept {
    if (in_.empty()) return false;
    v = static_cast<std::uint8_t>(in_.front());
    in_ = in_.subspan(1);
    return true;
  }
  bool u32(std::uint32_t& v) noexcept { return raft::detail::read_u32(in_, v); }
  bool u64(std::uint64_t& v) noexcept { return raft::detail::read_u64(in_, v); }
  template <class Tag>
  bool num(strong_number<Tag>& n) noexcept { return u64(n.value); }
  bool bytes(std::size_t n, std::span<const std::byte>& out) noexcept {
    if (in_.size() < n) return false;
    out = in_.first(n);
    in_ = in_.subspan(n);
    return true;
  }

 private:
  std::span<const std::byte> in_;  ///< what is left
};

/// Up to eight booleans sent as one flag byte (bit k = flag k; other bits must be zero).
template <class Bool, std::size_t N>
struct flag_bits {
  std::array<Bool*, N> flags;
};
template <class B, class... Rest>
flag_bits(B*, Rest*...) -> flag_bits<B, 1 + sizeof...(Rest)>;

// Each message type lists its fields once, in wire order; the sizer, the writer and the reader
// below walk that list. Field kinds: u64 numbers (term, index, id, plain u64), flag bytes,
// byte strings (u32 length + bytes), configurations (three u32-counted id lists), snapshot
// metadata (index, term, configuration) and entry lists (u32 count + entries).
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, vote_request>
void fields(M& m, F&& f) {
  f(m.term), f(m.last_log_index), f(m.last_log_term), f(flag_bits{&m.pre_vote, &m.transfer});
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, vote_response>
void fields(M& m, F&& f) {
  f(m.term), f(flag_bits{&m.granted, &m.pre_vote});
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, append_request>
void fields(M& m, F&& f) {
  f(m.term), f(m.prev_log_index), f(m.prev_log_term), f(m.leader_commit), f(m.round), f(flag_bits{&m.quiesce}),
      f(m.entries);
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, append_response>
void fields(M& m, F&& f) {
  f(m.term), f(flag_bits{&m.success}), f(m.match_index), f(m.rejected_index), f(m.conflict_index),
      f(m.conflict_term), f(m.round);
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, install_snapshot_request>
void fields(M& m, F&& f) {
  f(m.term), f(m.meta), f(m.offset), f(m.size), f(m.data);
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, install_snapshot_response>
void fields(M& m, F&& f) {
  f(m.term), f(m.index), f(m.next_offset), f(flag_bits{&m.installed});
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, timeout_now>
void fields(M& m, F&& f) {
  f(m.term);
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, read_index_request>
void fields(M& m, F&& f) {
  f(m.term), f(m.id);
}
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, read_index_response>
void fields(M& m, F&& f) {
  f(m.term), f(m.id), f(flag_bits{&m.ok}), f(m.index);
}

template <class T>
concept u64_field = std::same_as<T, std::uint64_t> || requires(T t) {
  { t.value } -> std::same_as<std::uint64_t&>;
};
inline std::uint64_t& u64_of(std::uint64_t& v) noexcept { return v; }
inline std::uint64_t u64_of(const std::uint64_t& v) noexcept { return v; }
template <class Tag>
std::uint64_t& u64_of(strong_number<Tag>& n) noexcept { return n.value; }
template <class Tag>
std::uint64_t u64_of(const strong_number<Tag>& n) noexcept { return n.value; }

/// Adds up the bytes of the fields it is shown.
struct sizer {
  std::size_t n = 0;
  /// False when a count or length does not fit its u32 (the message cannot be encoded).
  bool fits = true;
  void count(std::size_t c) noexcept {
    n += 4;
    if (c > std::numeric_limits<std::uint32_t>::max()) fits = false;
  }
  template <class T>
    requires u64_field<T>
  void operator()(const T&) noexcept { n += 8; }
  template <class B, std::size_t N>
  void operator()(const flag_bits<B, N>&) noexcept { n += 1; }
  void operator()(const buffer& b) noexcept { count(b.size()), n += b.size(); }
  void operator()(const configuration& c) noexcept {
    for (const auto* set : {&c.voters, &c.outgoing, &c.learners}) count(set->size()), n += 8 * set->size();
  }
  void operator()(const snapshot_meta& m) noexcept { n += 16, (*this)(m.config); }
  void operator()(const std::vector<log_entry>& es) noexcept {
    count(es.size());
    for (const auto& e : es) {
      n += entry_header_bytes + e.data.size();
      if (e.data.size() > std::numeric_limits<std::uint32_t>::max()) fits = false;
    }
  }
};

/// Writes the fields it is shown; the caller sized the output with `sizer` first.
struct writer {
  std::byte* p;
  template <class T>
    requires u64_field<T>
  void operator()(const T& v) noexcept { put_u64(p, u64_of(v)); }
  template <class B, std::size_t N>
  void operator()(const flag_bits<B, N>& f) noexcept {
    std::uint8_t v = 0;
    for (std::size_t k = 0; k < N; ++k) v |= std::uint8_t((*f.flags[k] ? 1u : 0u) << k);
    put_u8(p, v);
  }
  void bytes(std::span<const std::byte> b) noexcept {
    if (!b.empty()) std::memcpy(p, b.data(), b.size());
    p += b.size();
  }
  void operator()(const buffer& b) noexcept {
    put_u32(p, static_cast<std::uint32_t>(b.size()));
    bytes(b.bytes());
  }
  void operator()(const configuration& c) noexcept {
    for (const auto* set : {&c.voters, &c.outgoing, &c.learners}) {
      put_u32(p, static_cast<std::uint32_t>(set->size()));
      for (node_id id : *set) put_u64(p, id.value);
    }
  }
  void operator()(const snapshot_meta& m) noexcept {
    put_u64(p, m.index.value), put_u64(p, m.term.value), (*this)(m.config);
  }
  void operator()(const std::vector<log_entry>& es) noexcept {
    put_u32(p, static_cast<std::uint32_t>(es.size()));
    for (const auto& e : es) {
      put_u64(p, e.term.value);
      put_u64(p, e.index.value);
      put_u8(p, static_cast<std::uint8_t>(e.kind));
      (*this)(e.data);
    }
  }
};

/// Reads the fields it is shown, stopping at the first error (later fields are skipped).
struct field_reader {
  reader& r;
  std::error_code ec{};
  bool fail(codec_errc e) noexcept {
    if (!ec) ec = e;
    return false;
  }
  template <class T>
    requires u64_field<T>
  void operator()(T& v) noexcept {
    if (!ec && !r.u64(u64_of(v))) fail(codec_errc::truncated);
  }
  template <std::size_t N>
  void operator()(const flag_bits<bool, N>& f) noexcept {
    std::uint8_t v = 0;
    if (ec) return;
    if (!r.u8(v)) return void(fail(codec_errc::truncated));
    if (v >> N) return void(fail(codec_errc::invalid_value));
    for (std::size_t k = 0; k < N; ++k) *f.flags[k] = (v >> k) & 1u;
  }
  void operator()(buffer& b) {
    std::uint32_t size = 0;
    std::span<const std::byte> bytes;
    if (ec) return;
    if (!r.u32(size) || !r.bytes(size, bytes)) return void(fail(codec_errc::truncated));
    b = size == 0 ? buffer{} : buffer{bytes};
  }
  void operator()(configuration& c) {
    for (auto* set : {&c.voters, &c.outgoing, &c.learners}) {
      std::uint32_t count = 0;
      if (ec) return;
      if (!r.u32(count) || count > r.left() / 8) return void(fail(codec_errc::truncated));
      set->resize(count);
      for (node_id& id : *set) r.num(id);
    }
    if (!ec && validate(c) != nullptr) fail(codec_errc::invalid_value);
  }
  void operator()(snapshot_meta& m) {
    (*this)(m.index), (*this)(m.term), (*this)(m.config);
  }
  void operator()(std::vector<log_entry>& es) {
    std::uint32_t count = 0;
    if (ec) return;
    if (!r.u32(count)) return void(fail(codec_errc::truncated));
    // Every entry takes at least its header: a count the remaining bytes cannot hold is
    // rejected before the vector reserves anything.
    if (count > r.left() / entry_header_bytes) return void(fail(codec_errc::truncated));
    if (es.capacity() == 0) es = raft::detail::entry_vectors::take();
    es.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
      log_entry e;
      std::uint8_t kind = 0;
      if (!r.num(e.term) || !r.num(e.index) || !r.u8(kind)) return void(fail(codec_errc::truncated));
      if (kind > static_cast<std::uint8_t>(entry_kind::configuration))
        return void(fail(codec_errc::invalid_value));
      e.kind = static_cast<entry_kind>(kind);
      (*this)(e.data);
      if (ec) return;
      es.push_back(std::move(e));
    }
  }
};

inline sizer measure(const message& m) noexcept {
  sizer s;
  s.n = body_header_bytes;
  m.body.visit([&](const auto& b) { fields(b, s); });
  return s;
}

}  // namespace detail

/// Bytes `m` takes as a body (without the frame's length prefix).
[[nodiscard]] inline std::size_t body_size(const message& m) noexcept { return detail::measure(m).n; }

/// Bytes `m` takes as a frame (length prefix and body).
[[nodiscard]] inline std::size_t frame_size(const message& m) noexcept {
  return frame_header_bytes + body_size(m);
}

/// Whether `m` can be encoded as a frame whose body is at most `max_frame_bytes` long (and fits
/// the u32 length prefix and the u32 counts).
[[nodiscard]] inline bool fits(const message& m, std::size_t max_frame_bytes) noexcept {
  const detail::sizer s = detail::measure(m);
  return s.fits && s.n <= max_frame_bytes && s.n <= std::numeric_limits<std::uint32_t>::max();
}

/// Appends the body of `m` to `out` (which keeps its contents and capacity: reuse one vector to
/// encode without allocating). Counts and lengths must fit in u32 (see fits()).
inline void encode_body(const message& m, std::vector<std::byte>& out) {
  const std::size_t start = out.size();
  out.resize(start + body_size(m));
  detail::writer w{out.data() + start};
  detail::put_u8(w.p, version);
  detail::put_u8(w.p, static_cast<std::uint8_t>(m.body.index() + 1));
  detail::put_u64(w.p, m.group.value);
  detail::put_u64(w.p, m.from.value);
  detail::put_u64(w.p, m.to.value);
  m.body.visit([&](const auto& b) { detail::fields(b, w); });
}

/// Appends the frame of `m` (u32 length prefix, then the body) to `out`. See encode_body.
inline void encode_frame(const message& m, std::vector<std::byte>& out) {
  const std::size_t start = out.size();
  out.resize(start + frame_header_bytes);
  encode_body(m, out);
  std::byte* p = out.data() + start;
  detail::put_u32(p, static_cast<std::uint32_t>(out.size() - start - frame_header_bytes));
}

/// Reads a little-endian u32 (a frame's length prefix) from the first 4 bytes of `in`.
[[nodiscard]] inline std::uint32_t read_frame_length(std::span<const std::byte, 4> in) noexcept {
  return raft::detail::load_u32(in.data());
}

/// Checks a frame's length prefix before its body is read or any memory is reserved for it.
[[nodiscard]] inline std::error_code check_frame_length(std::uint32_t body_length,
                                                        std::size_t max_frame_bytes) noexcept {
  if (body_length > max_frame_bytes) return codec_errc::oversized;
  if (body_length < body_header_bytes) return codec_errc::truncated;
  return {};
}

/// Decodes exactly one body from `in` into `out`. On error `out` holds an unspecified but valid
/// message. Each payload becomes a raft::buffer of its own (small ones share a slab, see
/// raft/core/buffer.hpp), an AppendEntries' entry vector is a recycled one when a spare exists
/// (raft::recycle); nothing is allocated before the bytes it describes are known to be there.
[[nodiscard]] inline std::error_code decode_body(std::span<const std::byte> in, message& out) {
  detail::reader r(in);
  std::uint8_t ver = 0, type = 0;
  if (!r.u8(ver)) return codec_errc::truncated;
  if (ver != version) return codec_errc::wrong_version;
  if (!r.u8(type)) return codec_errc::truncated;
  if (type < 1 || type > max_message_type) return codec_errc::unknown_type;
  if (!r.num(out.group) || !r.num(out.from) || !r.num(out.to)) return codec_errc::truncated;
  detail::field_reader f{r};
  out.body.emplace_kind(type - 1u);
  out.body.visit([&](auto& b) { detail::fields(b, f); });
  if (f.ec) return f.ec;
  if (r.left() != 0) return codec_errc::trailing_bytes;
  return {};
}

/// Decodes `in` as exactly one frame (length prefix and body, nothing after it). The length
/// prefix is checked against `max_frame_bytes` first.
[[nodiscard]] inline std::error_code decode_frame(std::span<const std::byte> in, message& out,
                                                  std::size_t max_frame_bytes = default_max_frame_bytes) {
  if (in.size() < frame_header_bytes) return codec_errc::truncated;
  const std::uint32_t length = read_frame_length(in.first<4>());
  if (auto ec = check_frame_length(length, max_frame_bytes)) return ec;
  const auto rest = in.subspan(frame_header_bytes);
  if (rest.size() < length) return codec_errc::truncated;
  if (auto ec = decode_body(rest.first(length), out)) return ec;
  if (rest.size() != length) return codec_errc::trailing_bytes;
  return {};
}

// ---------------------------------------------------------------------------------------------
// The handshake a stream transport exchanges before any frame (raft::tcp_transport does):
//   bytes 0-3 magic "RAFT", byte 4 codec version, bytes 5-7 zero (reserved),
//   bytes 8-15 u64 cluster id, bytes 16-23 u64 sender's node id.

inline constexpr std::size_t hello_bytes = 24;
inline constexpr std::byte hello_magic[4] = {std::byte{'R'}, std::byte{'A'}, std::byte{'F'},
                                             std::byte{'T'}};

struct hello {
  std::uint64_t cluster_id = 0;
  node_id id;
  friend bool operator==(const hello&, const hello&) = default;
};

inline void encode_hello(const hello& h, std::span<std::byte, hello_bytes> out) noexcept {
  std::byte* p = out.data();
  for (auto b : hello_magic) *p++ = b;
  detail::put_u8(p, version);
  for (int i = 0; i < 3; ++i) detail::put_u8(p, 0);
  detail::put_u64(p, h.cluster_id);
  detail::put_u64(p, h.id.value);
}

/// Decodes a handshake. Checks the magic, the version and the reserved bytes; the caller checks
/// the cluster id and the node id against what it expects.
[[nodiscard]] inline std::error_code decode_hello(std::span<const std::byte, hello_bytes> in,
                                                  hello& out) noexcept {
  if (std::memcmp(in.data(), hello_magic, sizeof hello_magic) != 0) return codec_errc::bad_magic;
  detail::reader r(in.subspan<4>());
  std::uint8_t ver = 0, reserved = 0;
  (void)r.u8(ver);
  if (ver != version) return codec_errc::wrong_version;
  for (int i = 0; i < 3; ++i) {
    (void)r.u8(reserved);
    if (reserved != 0) return codec_errc::invalid_value;
  }
  (void)r.u64(out.cluster_id);
  (void)r.num(out.id);
  return {};
}

}  // namespace codec
}  // namespace v1
}  // namespace raft
