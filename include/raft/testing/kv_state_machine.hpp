// raft/testing/kv_state_machine.hpp - a small key-value state machine.
//
// Used by the tests, the simulation and the examples. Commands are binary: one operation byte,
// a little-endian u32 key length, the key, then the value (the rest). apply() returns the value
// the operation saw (put/del: the previous value; get: the current one; append: the new one).
// A malformed command changes nothing and returns "error: malformed command", the same on every
// node. It also keeps a running hash of everything applied, so two replicas can be compared.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

class kv_state_machine {
 public:
  enum class op : std::uint8_t { put = 1, get = 2, del = 3, append = 4 };

  struct command {
    op operation;
    std::string key;
    std::string value;
  };

  static buffer encode(op operation, std::string_view key, std::string_view value = {}) {
    std::vector<std::byte> out;
    out.reserve(5 + key.size() + value.size());
    out.push_back(static_cast<std::byte>(operation));
    const auto n = static_cast<std::uint32_t>(key.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(n >> (8 * i)));
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
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= std::uint32_t(in[1 + i]) << (8 * i);
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

 private:
  std::map<std::string, std::string> data_;
  index_t last_applied_{0};
  std::uint64_t applied_count_ = 0;
  std::uint64_t hash_ = 0xCBF29CE484222325ull;
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
