// examples/kv/server_options.hpp - the command-line options that both servers (kv_server and
// sharded_kv_server) take: who this process is, where its data and ports are, and how it syncs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include <raft/core/types.hpp>
#include <raft/transport/tcp.hpp>

#include "command_line.hpp"

namespace kv {

struct server_options {
  raft::node_id id;
  std::filesystem::path data;
  std::map<raft::node_id, raft::tcp_address> peers;  // every member, this one included
  raft::tcp_address client{"127.0.0.1", 0};           // --client-host, --client-port
  std::uint64_t cluster_id;
  bool fsync = true;
  std::uint64_t snapshot_every = 10000;  // applied entries between snapshots (0: none)

  explicit server_options(std::uint64_t default_cluster_id) : cluster_id(default_cluster_id) {}

  /// A server's usage text: "usage: <program> " and the required options, then `more_lines`
  /// (the other options), each indented to line up under the first option.
  static std::string usage(std::string_view program, std::initializer_list<std::string_view> more_lines) {
    const std::string head = "usage: " + std::string(program) + " ";
    std::string text = head + "--id N --data DIR --peers 1=HOST:PORT,2=HOST:PORT,...\n";
    for (const std::string_view line : more_lines) ((text += std::string(head.size(), ' ')) += line) += '\n';
    return text;
  }

  /// Reads the whole command line. Each argument goes first to `own_option`, the program's own
  /// options (it returns true if it took the argument), then to these; anything else, and a
  /// missing required option, is a mistake. `self` is what the program calls what --id names
  /// ("node", "process").
  template <class OwnOption>
  void read(command_line& args, const char* self, OwnOption own_option) {
    while (args.next())
      if (!own_option(args) && !read_option(args)) args.reject_current();
    check(args, self);
  }

 private:
  /// Takes the current argument if it is one of these options; false if it is not.
  bool read_option(command_line& args) {
    const std::string_view arg = args.current();
    if (arg == "--id") {
      id = raft::node_id{args.number_value()};
      have_id_ = true;
    } else if (arg == "--data") {
      data = std::string(args.value());
    } else if (arg == "--peers") {
      peers = parse_peers(args, args.value());
    } else if (arg == "--client-port") {
      client.port = static_cast<std::uint16_t>(args.number_value(65535));
      have_client_port_ = true;
    } else if (arg == "--client-host") {
      client.host = std::string(args.value());
    } else if (arg == "--cluster-id") {
      cluster_id = args.number_value();
    } else if (arg == "--snapshot-every") {
      snapshot_every = args.number_value();
    } else if (arg == "--no-fsync") {
      fsync = false;
    } else {
      return false;
    }
    return true;
  }

  /// After the last argument: refuses a command line without the required options.
  void check(const command_line& args, const char* self) const {
    if (!have_id_ || id == raft::no_node) args.fail("--id is required (nonzero)");
    if (data.empty()) args.fail("--data is required");
    if (peers.empty()) args.fail("--peers is required");
    if (!peers.contains(id)) args.fail(std::string("--peers must list this ") + self + "'s own id and address");
    if (!have_client_port_) args.fail("--client-port is required");
  }

  bool have_id_ = false;
  bool have_client_port_ = false;
};

}  // namespace kv
