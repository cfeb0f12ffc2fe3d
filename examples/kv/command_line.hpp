// examples/kv/command_line.hpp - reading the command line of the example programs (kv_server,
// kv_client, sharded_kv_server): options in order, their values, numbers, --peers lists and the
// --tls-* files, and one way to report a mistake: "<program>: <why>", the usage text, exit 2.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <raft/core/types.hpp>
#include <raft/transport/tcp.hpp>

#include "address_list.hpp"

namespace kv {

/// Exit status of a command line the program cannot use.
constexpr int usage_exit_status = 2;

class command_line {
 public:
  /// `usage_text` is printed after every mistake: the program's synopsis, ending in a newline.
  command_line(int argc, char** argv, std::string program, std::string usage_text)
      : argc_(argc), argv_(argv), program_(std::move(program)), usage_(std::move(usage_text)) {}

  /// Moves to the next argument; false after the last one. -h and --help print the usage and
  /// exit, so no program has to look for them.
  bool next() {
    if (++at_ >= argc_) return false;
    if (current() == "-h" || current() == "--help") fail("help");
    return true;
  }

  [[nodiscard]] std::string_view current() const { return argv_[at_]; }

  /// The argument after the current option, which it is the value of.
  std::string_view value() {
    if (at_ + 1 >= argc_) fail(std::string(current()) + " needs a value");
    return argv_[++at_];
  }

  /// The current option's value as a number (see number()), named after the option.
  std::uint64_t number_value(std::uint64_t max = UINT64_MAX, int base = 0) {
    const std::string option(current());
    return number(value(), option.c_str(), max, base);
  }

  /// `text` as an unsigned number of at most `max`; with base 0, 0x... is hexadecimal and 0...
  /// octal. Anything else is a mistake that names `what`.
  std::uint64_t number(std::string_view text, const char* what, std::uint64_t max = UINT64_MAX,
                       int base = 0) const {
    const std::string s(text);
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str(), &end, base);
    if (s.empty() || s[0] == '-' || *end != '\0' || errno != 0 || v > max)
      fail(std::string("bad ") + what + ": '" + s + "'");
    return v;
  }

  /// Reports a mistake (or "help") with the usage text and exits with usage_exit_status.
  [[noreturn]] void fail(const std::string& why) const {
    std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), why.c_str(), usage_.c_str());
    std::exit(usage_exit_status);
  }

  /// The current argument is none the program knows.
  [[noreturn]] void reject_current() const { fail("unknown argument '" + std::string(current()) + "'"); }

 private:
  int argc_;
  char** argv_;
  std::string program_;
  std::string usage_;
  int at_ = 0;  // argv_[0] is the program
};

/// "1=127.0.0.1:7001,2=host:7002" (--peers) -> {1: (127.0.0.1, 7001), 2: (host, 7002)}.
inline std::map<raft::node_id, raft::tcp_address> parse_peers(const command_line& args, std::string_view list) {
  std::map<raft::node_id, raft::tcp_address> out;
  try {
    for (auto& [id, a] : parse_address_list(list)) {
      if (id == 0) args.fail("node id 0 is reserved");
      const auto port = static_cast<std::uint16_t>(args.number(a.port, "port", 65535));
      out.emplace(raft::node_id{id}, raft::tcp_address{a.host, port});
    }
  } catch (const std::invalid_argument& e) {
    args.fail(std::string("--peers: ") + e.what());
  }
  return out;
}

/// The files of --tls-cert, --tls-key and --tls-ca: all three, or none (no TLS).
struct tls_files {
  std::string cert, key, ca;

  [[nodiscard]] bool given() const { return !cert.empty(); }

  /// Takes the current argument if it is one of the three options; false if it is not.
  bool read_option(command_line& args) {
    const std::string_view arg = args.current();
    std::string* file = arg == "--tls-cert" ? &cert : arg == "--tls-key" ? &key : arg == "--tls-ca" ? &ca : nullptr;
    if (file == nullptr) return false;
    *file = std::string(args.value());
    return true;
  }

  /// After the last argument: refuses one or two of the three, and any of them in a build
  /// without TLS (`built_with_tls`: RAFT_KV_TLS, which meson sets when it found OpenSSL).
  void check(const command_line& args, bool built_with_tls) const {
    const int count = int(!cert.empty()) + int(!key.empty()) + int(!ca.empty());
    if (count != 0 && count != 3) args.fail("--tls-cert, --tls-key and --tls-ca go together");
    if (count != 0 && !built_with_tls)
      args.fail("built without TLS support (OpenSSL was not found when it was configured)");
  }
};

}  // namespace kv
