// raft/transport/codec.hpp - the versioned binary wire format of raft::message.
//
// Standard C++ only (no Asio): usable alone, by a transport of your own or a fuzzer.
// The format is described byte by byte in docs/transport.md. In short:
//   frame   = u32 body_length, body                      (the stream framing; body_length <= limit)
//   body    = u8 version, u8 type, u64 from, u64 to, fields of the type, nothing after them
//   integers are little-endian and fixed-width; flags are one byte with unused bits zero.
//
// Decoding never trusts its input: every length and count is checked against the bytes that are
// actually left before anything is allocated, a frame's length is checked against the limit
// before its body is read, and any input that is not exactly one well-formed body (truncated,
// oversized, unknown type, other version, unknown flag bits or entry kind, bytes left over) is
// rejected with a std::error_code of raft::codec_errc. The encoding is canonical: a body that
// decodes re-encodes to the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/types.hpp"

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
inline constexpr std::uint8_t version = 1;

/// The type tags (byte 1 of a body).
enum class message_type : std::uint8_t {
  vote_request = 1,
  vote_response = 2,
  append_request = 3,
  append_response = 4,
};

/// Bytes of the frame's length prefix.
inline constexpr std::size_t frame_header_bytes = 4;
/// Bytes every body starts with: version, type, from, to.
inline constexpr std::size_t body_header_bytes = 1 + 1 + 8 + 8;
/// Bytes of one log entry on the wire, besides its payload: term, index, kind, payload length.
inline constexpr std::size_t entry_header_bytes = 8 + 8 + 1 + 4;
/// The default frame limit (a frame's body may not be longer).
inline constexpr std::size_t default_max_frame_bytes = std::size_t{16} << 20;

namespace detail {

inline constexpr std::size_t fixed_bytes(message_type t) noexcept {
  switch (t) {
    case message_type::vote_request: return 8 + 8 + 8 + 1;
    case message_type::vote_response: return 8 + 1;
    case message_type::append_request: return 8 + 8 + 8 + 8 + 4;
    case message_type::append_response: return 8 + 1 + 8 + 8 + 8 + 8;
  }
  return 0;
}

template <class T>
inline constexpr message_type type_of = std::is_same_v<T, vote_request>    ? message_type::vote_request
                                        : std::is_same_v<T, vote_response> ? message_type::vote_response
                                        : std::is_same_v<T, append_request>
                                            ? message_type::append_request
                                            : message_type::append_response;

inline void put_u8(std::byte*& p, std::uint8_t v) noexcept { *p++ = std::byte{v}; }
inline void put_u32(std::byte*& p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) *p++ = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_u64(std::byte*& p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) *p++ = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}

/// A bounds-checked reader over a span. Every read checks what is left first.
class reader {
 public:
  explicit reader(std::span<const std::byte> in) noexcept : p_(in.data()), left_(in.size()) {}
  [[nodiscard]] std::size_t left() const noexcept { return left_; }
  bool u8(std::uint8_t& v) noexcept {
    if (left_ < 1) return false;
    v = static_cast<std::uint8_t>(*p_);
    ++p_, --left_;
    return true;
  }
  bool u32(std::uint32_t& v) noexcept {
    if (left_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<std::uint8_t>(p_[i])) << (8 * i);
    p_ += 4, left_ -= 4;
    return true;
  }
  bool u64(std::uint64_t& v) noexcept {
    if (left_ < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<std::uint8_t>(p_[i])) << (8 * i);
    p_ += 8, left_ -= 8;
    return true;
  }
  template <class Tag>
  bool num(strong_number<Tag>& n) noexcept { return u64(n.value); }
  bool bytes(std::size_t n, std::span<const std::byte>& out) noexcept {
    if (left_ < n) return false;
    out = {p_, n};
    p_ += n, left_ -= n;
    return true;
  }

 private:
  const std::byte* p_;
  std::size_t left_;
};

}  // namespace detail

/// Bytes `m` takes as a body (without the frame's length prefix).
[[nodiscard]] inline std::size_t body_size(const message& m) noexcept {
  return std::visit(
      [](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        std::size_t n = body_header_bytes + detail::fixed_bytes(detail::type_of<T>);
        if constexpr (std::is_same_v<T, append_request>)
          for (const auto& e : b.entries) n += entry_header_bytes + e.data.size();
        return n;
      },
      m.body);
}

/// Bytes `m` takes as a frame (length prefix and body).
[[nodiscard]] inline std::size_t frame_size(const message& m) noexcept {
  return frame_header_bytes + body_size(m);
}

/// Whether `m` can be encoded as a frame whose body is at most `max_frame_bytes` long (and fits
/// the u32 length prefix and the u32 counts).
[[nodiscard]] inline bool fits(const message& m, std::size_t max_frame_bytes) noexcept {
  if (const auto* a = std::get_if<append_request>(&m.body)) {
    if (a->entries.size() > std::numeric_limits<std::uint32_t>::max()) return false;
    for (const auto& e : a->entries)
      if (e.data.size() > std::numeric_limits<std::uint32_t>::max()) return false;
  }
  const std::size_t n = body_size(m);
  return n <= max_frame_bytes && n <= std::numeric_limits<std::uint32_t>::max();
}

/// Appends the body of `m` to `out` (which keeps its contents and capacity: reuse one vector to
/// encode without allocating). Entry counts and payload sizes must fit in u32 (see fits()).
inline void encode_body(const message& m, std::vector<std::byte>& out) {
  const std::size_t start = out.size();
  out.resize(start + body_size(m));
  std::byte* p = out.data() + start;
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        using namespace detail;
        put_u8(p, version);
        put_u8(p, static_cast<std::uint8_t>(type_of<T>));
        put_u64(p, m.from.value);
        put_u64(p, m.to.value);
        if constexpr (std::is_same_v<T, vote_request>) {
          put_u64(p, b.term.value);
          put_u64(p, b.last_log_index.value);
          put_u64(p, b.last_log_term.value);
          put_u8(p, b.pre_vote ? 1 : 0);
        } else if constexpr (std::is_same_v<T, vote_response>) {
          put_u64(p, b.term.value);
          put_u8(p, std::uint8_t((b.granted ? 1 : 0) | (b.pre_vote ? 2 : 0)));
        } else if constexpr (std::is_same_v<T, append_request>) {
          put_u64(p, b.term.value);
          put_u64(p, b.prev_log_index.value);
          put_u64(p, b.prev_log_term.value);
          put_u64(p, b.leader_commit.value);
          put_u32(p, static_cast<std::uint32_t>(b.entries.size()));
          for (const auto& e : b.entries) {
            put_u64(p, e.term.value);
            put_u64(p, e.index.value);
            put_u8(p, static_cast<std::uint8_t>(e.kind));
            put_u32(p, static_cast<std::uint32_t>(e.data.size()));
            if (!e.data.empty()) {
              const auto bytes = e.data.bytes();
              std::memcpy(p, bytes.data(), bytes.size());
              p += bytes.size();
            }
          }
        } else {
          put_u64(p, b.term.value);
          put_u8(p, b.success ? 1 : 0);
          put_u64(p, b.match_index.value);
          put_u64(p, b.rejected_index.value);
          put_u64(p, b.conflict_index.value);
          put_u64(p, b.conflict_term.value);
        }
      },
      m.body);
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
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<std::uint8_t>(in[i])) << (8 * i);
  return v;
}

/// Checks a frame's length prefix before its body is read or any memory is reserved for it.
[[nodiscard]] inline std::error_code check_frame_length(std::uint32_t body_length,
                                                        std::size_t max_frame_bytes) noexcept {
  if (body_length > max_frame_bytes) return codec_errc::oversized;
  if (body_length < body_header_bytes) return codec_errc::truncated;
  return {};
}

/// Decodes exactly one body from `in` into `out`. On error `out` holds an unspecified but valid
/// message. Each entry payload becomes a raft::buffer of its own (one allocation per non-empty
/// payload); nothing is allocated before the bytes it describes are known to be there.
[[nodiscard]] inline std::error_code decode_body(std::span<const std::byte> in, message& out) {
  detail::reader r(in);
  std::uint8_t ver = 0, type = 0;
  if (!r.u8(ver)) return codec_errc::truncated;
  if (ver != version) return codec_errc::wrong_version;
  if (!r.u8(type)) return codec_errc::truncated;
  if (!r.num(out.from) || !r.num(out.to)) {
    // An unknown type is reported as such even when the rest is short.
    if (type < 1 || type > 4) return codec_errc::unknown_type;
    return codec_errc::truncated;
  }
  std::uint8_t flags = 0;
  switch (static_cast<message_type>(type)) {
    case message_type::vote_request: {
      auto& b = out.body.emplace<vote_request>();
      if (!r.num(b.term) || !r.num(b.last_log_index) || !r.num(b.last_log_term) || !r.u8(flags))
        return codec_errc::truncated;
      if (flags > 1) return codec_errc::invalid_value;
      b.pre_vote = flags & 1;
      break;
    }
    case message_type::vote_response: {
      auto& b = out.body.emplace<vote_response>();
      if (!r.num(b.term) || !r.u8(flags)) return codec_errc::truncated;
      if (flags > 3) return codec_errc::invalid_value;
      b.granted = flags & 1;
      b.pre_vote = flags & 2;
      break;
    }
    case message_type::append_request: {
      auto& b = out.body.emplace<append_request>();
      std::uint32_t count = 0;
      if (!r.num(b.term) || !r.num(b.prev_log_index) || !r.num(b.prev_log_term) ||
          !r.num(b.leader_commit) || !r.u32(count))
        return codec_errc::truncated;
      // Every entry takes at least its header: a count the remaining bytes cannot hold is
      // rejected before the vector reserves anything.
      if (count > r.left() / entry_header_bytes) return codec_errc::truncated;
      b.entries.reserve(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        log_entry e;
        std::uint8_t kind = 0;
        std::uint32_t size = 0;
        std::span<const std::byte> payload;
        if (!r.num(e.term) || !r.num(e.index) || !r.u8(kind) || !r.u32(size))
          return codec_errc::truncated;
        if (kind > static_cast<std::uint8_t>(entry_kind::configuration))
          return codec_errc::invalid_value;
        if (!r.bytes(size, payload)) return codec_errc::truncated;
        e.kind = static_cast<entry_kind>(kind);
        if (size != 0) e.data = buffer{payload};
        b.entries.push_back(std::move(e));
      }
      break;
    }
    case message_type::append_response: {
      auto& b = out.body.emplace<append_response>();
      if (!r.num(b.term) || !r.u8(flags) || !r.num(b.match_index) || !r.num(b.rejected_index) ||
          !r.num(b.conflict_index) || !r.num(b.conflict_term))
        return codec_errc::truncated;
      if (flags > 1) return codec_errc::invalid_value;
      b.success = flags & 1;
      break;
    }
    default:
      return codec_errc::unknown_type;
  }
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
