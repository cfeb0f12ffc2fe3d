// raft/testing/kv_state_machine.hpp - a small key-value state machine.
//
// Used by the tests, the simulation and the examples. Commands are binary: one operation byte,
// a little-endian u32 key length, the key, then the value (the rest). apply() returns the value
// the operation saw (put/del: the previous value; get: the current one; append: the new one).
// A malformed command changes nothing and returns "error: malformed command", the same on every
// node. It also keeps a running hash of everything applied, so two replicas can be compared.
//
// Snapshots (raft::snapshot_state_machine): snapshot() returns a source over an immutable copy of
// the state (taken at the call, O(size of the state); apply() itself is unchanged and pays
// nothing), serialized as
//   "RAFTKVS1", u64 last applied index, u64 applied count, u64 hash, u64 number of pairs,
//   then per pair (in key order): u32 key length, key, u32 value length, value,
//   then u32 CRC-32C of every byte before it
// (all integers little-endian). restore() returns a sink that parses bytes as they come and,
// on finish(), replaces the whole state (data, last applied index, count and hash). Malformed
// input (bad magic, a length running past the end, keys not strictly increasing, trailing bytes,
// a checksum mismatch, too few bytes) throws std::runtime_error and changes nothing.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"
#include "raft/storage/detail/crc32c.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

class kv_state_machine {
 public:
  enum class op : std::uint8_t { put = 1, get = 2, del = 3, append = 4 };
  using map_type = std::map<std::string, std::string>;

  class snapshot_source;
  class snapshot_sink;

  struct command {
    op operation;
    std::string key;
    std::string value;
  };

  static buffer encode(op operation, std::string_view key, std::string_view value = {}) {
    std::vector<std::byte> out;
    out.reserve(5 + key.size() + value.size());
    out.push_back(static_cast<std::byte>(operation));
    raft::detail::append_u32(out, static_cast<std::uint32_t>(key.size()));
    for (char c : key) out.push_back(static_cast<std::byte>(c));
    for (char c : value) out.push_back(static_cast<std::byte>(c));
    return buffer{out};
  }
  static buffer put(std::string_view key, std::string_view value) { return encode(op::put, key, value); }
  static buffer get(std::string_view key) { return encode(op::get, key); }
  static buffer del(std::string_view key) { return encode(op::del, key); }
  static buffer append(std::string_view key, std::string_view value) {
    return encode(op::append, key, value);
  }

  static std::optional<command> decode(std::span<const std::byte> in) {
    if (in.size() < 5) return std::nullopt;
    const auto o = static_cast<std::uint8_t>(in[0]);
    if (o < 1 || o > 4) return std::nullopt;
    const std::uint32_t n = raft::detail::load_u32(in.data() + 1);
    if (n > in.size() - 5) return std::nullopt;
    auto text = [](std::span<const std::byte> s) {
      return std::string(reinterpret_cast<const char*>(s.data()), s.size());
    };
    return command{static_cast<op>(o), text(in.subspan(5, n)), text(in.subspan(5 + n))};
  }

  /// Applies one committed command (raft::state_machine).
  std::string apply(index_t index, std::span<const std::byte> bytes) {
    if (index <= last_applied_)
      throw std::logic_error("kv_state_machine: entry " + std::to_string(index.value) +
                             " applied out of order or twice");
    last_applied_ = index;
    ++applied_count_;
    frozen_.reset();
    for (std::byte b : bytes) hash_ = (hash_ ^ std::uint64_t(b)) * 0x100000001B3ull;
    hash_ = (hash_ ^ index.value) * 0x100000001B3ull;
    auto c = decode(bytes);
    if (!c) return "error: malformed command";
    auto& slot = data_[c->key];
    std::string seen = slot;
    switch (c->operation) {
      case op::put: slot = c->value; break;
      case op::get: break;
      case op::del: data_.erase(c->key); break;
      case op::append: slot += c->value; seen = slot; break;
    }
    if (c->operation == op::get && seen.empty()) data_.erase(c->key);
    return seen;
  }

  [[nodiscard]] const std::map<std::string, std::string>& data() const noexcept { return data_; }
  [[nodiscard]] std::optional<std::string> find(const std::string& key) const {
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] index_t last_applied() const noexcept { return last_applied_; }
  [[nodiscard]] std::uint64_t applied_count() const noexcept { return applied_count_; }
  /// Hash of every (command, index) applied so far, in order.
  [[nodiscard]] std::uint64_t hash() const noexcept { return hash_; }

  /// A point-in-time image of the state, for raft::snapshot_state_machine: later applies do not
  /// change what it reads. Costs one copy of the data (shared by further calls until the next
  /// apply).
  [[nodiscard]] snapshot_source snapshot();
  /// A sink that parses a snapshot and, on finish(), replaces this state machine's state.
  [[nodiscard]] snapshot_sink restore();

  /// The whole snapshot as one buffer (tests and tools).
  [[nodiscard]] std::vector<std::byte> snapshot_bytes();

 private:
  struct image {
    map_type data;
    index_t last_applied{0};
    std::uint64_t applied_count = 0;
    std::uint64_t hash = 0;
  };

  std::shared_ptr<const image> frozen_;  ///< the state as of the last snapshot(), until an apply
  std::map<std::string, std::string> data_;
  index_t last_applied_{0};
  std::uint64_t applied_count_ = 0;
  std::uint64_t hash_ = 0xCBF29CE484222325ull;
};

namespace kv_detail {
inline constexpr char snapshot_magic[9] = "RAFTKVS1";
inline constexpr std::size_t snapshot_header_bytes = 40;
/// A pointer that a move leaves null.
template <class T>
struct moving_ptr {
  T* p = nullptr;
  explicit moving_ptr(T* q) noexcept : p(q) {}
  moving_ptr(moving_ptr&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  moving_ptr& operator=(moving_ptr&& o) noexcept {
    p = std::exchange(o.p, nullptr);
    return *this;
  }
};
}  // namespace kv_detail

/// Reads a kv_state_machine snapshot in order (raft::snapshot_source). Holds its own immutable
/// copy of the state: it may outlive the state machine, and be read on any thread.
class kv_state_machine::snapshot_source {
 public:
  /// Copies up to `buf.size()` next bytes into `buf`; returns how many, 0 at the end.
  std::size_t read(std::span<std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size() && stage_ != stage::end) {
      std::span<const std::byte> part;
      switch (stage_) {
        case stage::header:
        case stage::key_length:
        case stage::value_length:
        case stage::crc: part = std::span<const std::byte>(fixed_.data(), fixed_len_); break;
        case stage::key: part = as_bytes(it_->first); break;
        case stage::value: part = as_bytes(it_->second); break;
        case stage::end: break;
      }
      const std::size_t n = std::min(part.size() - pos_, buf.size() - done);
      if (n != 0) std::memcpy(buf.data() + done, part.data() + pos_, n);
      if (stage_ != stage::crc) crc_ = raft::detail::crc32c_update(crc_, part.data() + pos_, n);
      done += n;
      pos_ += n;
      if (pos_ == part.size()) next_stage();
    }
    return done;
  }

 private:
  friend class kv_state_machine;
  enum class stage : std::uint8_t { header, key_length, key, value_length, value, crc, end };

  explicit snapshot_source(std::shared_ptr<const image> img) : img_(std::move(img)), it_(img_->data.begin()) {
    std::memcpy(fixed_.data(), kv_detail::snapshot_magic, 8);
    raft::detail::store_u64(fixed_.data() + 8, img_->last_applied.value);
    raft::detail::store_u64(fixed_.data() + 16, img_->applied_count);
    raft::detail::store_u64(fixed_.data() + 24, img_->hash);
    raft::detail::store_u64(fixed_.data() + 32, img_->data.size());
    fixed_len_ = kv_detail::snapshot_header_bytes;
  }

  static std::span<const std::byte> as_bytes(const std::string& s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }

  void set_fixed_u32(std::uint32_t v) {
    raft::detail::store_u32(fixed_.data(), v);
    fixed_len_ = 4;
  }

  void next_stage() {
    pos_ = 0;
    switch (stage_) {
      case stage::header:
      case stage::value:
        if (stage_ == stage::value) ++it_;
        if (it_ == img_->data.end()) {
          stage_ = stage::crc;
          set_fixed_u32(crc_);
        } else {
          stage_ = stage::key_length;
          set_fixed_u32(std::uint32_t(it_->first.size()));
        }
        break;
      case stage::key_length: stage_ = stage::key; break;
      case stage::key:
        stage_ = stage::value_length;
        set_fixed_u32(std::uint32_t(it_->second.size()));
        break;
      case stage::value_length: stage_ = stage::value; break;
      case stage::crc:
      case stage::end: stage_ = stage::end; break;
    }
  }

  std::shared_ptr<const image> img_;
  map_type::const_iterator it_;  ///< the pair being read (stays valid: img_ owns the map)
  stage stage_ = stage::header;
  std::size_t pos_ = 0;          ///< bytes of the current part already read
  std::array<std::byte, kv_detail::snapshot_header_bytes> fixed_{};  ///< header or a u32 field
  std::size_t fixed_len_ = 0;
  std::uint32_t crc_ = 0;
};

/// Parses a kv_state_machine snapshot as its bytes arrive (raft::snapshot_sink); finish()
/// replaces the state machine's state. Throws std::runtime_error on malformed input, without
/// touching the state machine. Refers to its state machine, which must outlive it.
class kv_state_machine::snapshot_sink {
 public:
  void write(std::span<const std::byte> in) {
    if (sm_.p == nullptr) throw std::logic_error("kv_state_machine::snapshot_sink::write after finish");
    while (!in.empty()) {
      if (stage_ == stage::end) fail("trailing bytes after the snapshot");
      std::size_t n = 0;
      switch (stage_) {
        case stage::header:
        case stage::key_length:
        case stage::value_length:
        case stage::crc:
          n = std::min(in.size(), need_ - fixed_len_);
          std::memcpy(fixed_.data() + fixed_len_, in.data(), n);
          fixed_len_ += n;
          break;
        case stage::key:
        case stage::value: {
          std::string& s = stage_ == stage::key ? key_ : value_;
          n = std::size_t(std::min<std::uint64_t>(in.size(), need_ - s.size()));
          s.append(reinterpret_cast<const char*>(in.data()), n);
          break;
        }
        case stage::end: break;
      }
      if (stage_ != stage::crc) crc_ = raft::detail::crc32c_update(crc_, in.data(), n);
      in = in.subspan(n);
      advance();
    }
  }

  /// Replaces the state machine's state with the snapshot's. Throws std::runtime_error if the
  /// snapshot is incomplete (the state machine is then unchanged).
  void finish() {
    if (sm_.p == nullptr) throw std::logic_error("kv_state_machine::snapshot_sink::finish called twice");
    if (stage_ != stage::end) fail("the snapshot ends early");
    kv_state_machine& sm = *std::exchange(sm_.p, nullptr);
    sm.data_ = std::move(data_);
    sm.last_applied_ = last_applied_;
    sm.applied_count_ = applied_count_;
    sm.hash_ = hash_;
    sm.frozen_.reset();
  }

 private:
  friend class kv_state_machine;
  enum class stage : std::uint8_t { header, key_length, key, value_length, value, crc, end };

  explicit snapshot_sink(kv_state_machine& sm) : sm_(&sm) {}

  [[noreturn]] static void fail(const std::string& what) {
    throw std::runtime_error("kv_state_machine: malformed snapshot: " + what);
  }

  void expect_fixed(stage s, std::size_t bytes) {
    stage_ = s;
    need_ = bytes;
    fixed_len_ = 0;
  }
  void expect_text(stage s, std::uint32_t bytes) {
    stage_ = s;
    need_ = bytes;
    (s == stage::key ? key_ : value_).clear();
  }
  void next_pair_or_crc() {
    if (pairs_left_ == 0)
      expect_fixed(stage::crc, 4);
    else
      expect_fixed(stage::key_length, 4);
  }

  /// Moves on while the current field is complete (zero-length fields complete at once).
  void advance() {
    for (;;) {
      switch (stage_) {
        case stage::header:
          if (fixed_len_ < need_) return;
          if (std::memcmp(fixed_.data(), kv_detail::snapshot_magic, 8) != 0) fail("bad magic number");
          last_applied_ = index_t{raft::detail::load_u64(fixed_.data() + 8)};
          applied_count_ = raft::detail::load_u64(fixed_.data() + 16);
          hash_ = raft::detail::load_u64(fixed_.data() + 24);
          pairs_left_ = raft::detail::load_u64(fixed_.data() + 32);
          next_pair_or_crc();
          break;
        case stage::key_length:
          if (fixed_len_ < need_) return;
          expect_text(stage::key, raft::detail::load_u32(fixed_.data()));
          break;
        case stage::key:
          if (key_.size() < need_) return;
          if (!data_.empty() && !(data_.rbegin()->first < key_)) fail("keys are not in strictly increasing order");
          expect_fixed(stage::value_length, 4);
          break;
        case stage::value_length:
          if (fixed_len_ < need_) return;
          expect_text(stage::value, raft::detail::load_u32(fixed_.data()));
          break;
        case stage::value:
          if (value_.size() < need_) return;
          data_.emplace_hint(data_.end(), std::move(key_), std::move(value_));
          key_.clear();
          value_.clear();
          --pairs_left_;
          next_pair_or_crc();
          break;
        case stage::crc:
          if (fixed_len_ < need_) return;
          if (raft::detail::load_u32(fixed_.data()) != crc_) fail("checksum mismatch");
          stage_ = stage::end;
          return;
        case stage::end: return;
      }
    }
  }

  kv_detail::moving_ptr<kv_state_machine> sm_;  ///< null once finished (or moved from)
  stage stage_ = stage::header;
  std::uint64_t need_ = kv_detail::snapshot_header_bytes;  ///< bytes the current field takes
  std::array<std::byte, kv_detail::snapshot_header_bytes> fixed_{};
  std::size_t fixed_len_ = 0;
  std::string key_, value_;
  std::uint32_t crc_ = 0;
  // What finish() installs.
  map_type data_;
  index_t last_applied_{0};
  std::uint64_t applied_count_ = 0;
  std::uint64_t hash_ = 0;
  std::uint64_t pairs_left_ = 0;
};

inline kv_state_machine::snapshot_source kv_state_machine::snapshot() {
  if (!frozen_) frozen_ = std::make_shared<const image>(image{data_, last_applied_, applied_count_, hash_});
  return snapshot_source(frozen_);
}

inline kv_state_machine::snapshot_sink kv_state_machine::restore() { return snapshot_sink(*this); }

inline std::vector<std::byte> kv_state_machine::snapshot_bytes() {
  auto src = snapshot();
  std::vector<std::byte> out;
  std::array<std::byte, 4096> buf;
  while (const std::size_t n = src.read(buf)) out.insert(out.end(), buf.begin(), buf.begin() + std::ptrdiff_t(n));
  return out;
}

}  // namespace testing
}  // namespace v1
}  // namespace raft
