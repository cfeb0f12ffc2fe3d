// benchmarks/support/follower_protocol.hpp - the lines a follower process of --transport tcp-procs
// and its parent exchange over the control pipes, one line each way per request:
//   follower, once started:  "port P"                 the port its transport bound
//   parent -> follower:      "peers 1=P1 2=P2 ..."    every node's port; the follower starts its node
//   parent -> follower:      "sample"                 answered "sample cpu=.. sys=.. allocs=.. ..."
//   parent -> follower:      "status"                 answered "status node N: ... (pid P)"
//   parent -> follower:      "stop", or end of file   the follower stops its node and exits
// Both ends format and parse here, so the two cannot drift apart.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <raft/raft.hpp>

#include "cluster.hpp"
#include "diagnostics.hpp"
#include "follower_processes.hpp"
#include "process_usage.hpp"

namespace raft_bench {

/// "key=value key=value" (after a leading word) -> map. Values are numbers.
inline std::map<std::string, double> parse_fields(std::string_view line) {
  std::map<std::string, double> out;
  std::size_t at = 0;
  while (at < line.size()) {
    std::size_t end = line.find(' ', at);
    if (end == std::string_view::npos) end = line.size();
    const std::string_view word = line.substr(at, end - at);
    if (auto eq = word.find('='); eq != std::string_view::npos)
      out[std::string(word.substr(0, eq))] = std::strtod(std::string(word.substr(eq + 1)).c_str(), nullptr);
    at = end + 1;
  }
  return out;
}

// --- ports --------------------------------------------------------------------------------------

inline std::string port_line(std::uint16_t port) { return "port " + std::to_string(port) + "\n"; }

/// The port a "port P" line reports, or nullopt if it is not one.
inline std::optional<std::uint16_t> port_of(std::string_view line) {
  if (line.rfind("port ", 0) != 0) return std::nullopt;
  return static_cast<std::uint16_t>(std::strtoul(std::string(line.substr(5)).c_str(), nullptr, 10));
}

inline std::string peers_line(const port_map& ports) {
  std::string line = "peers";
  for (auto [id, port] : ports) line += " " + std::to_string(id.value) + "=" + std::to_string(port);
  return line + "\n";
}

inline bool is_peers_line(std::string_view line) { return line.rfind("peers ", 0) == 0; }

inline port_map ports_of_peers_line(std::string_view line) {
  port_map ports;
  for (const auto& [peer, port] : parse_fields(line))
    ports[raft::node_id{std::stoull(peer)}] = static_cast<std::uint16_t>(port);
  return ports;
}

// --- samples ------------------------------------------------------------------------------------

/// A follower process's answer to "sample": its usage, its node's storage counters, the elections
/// its node won and whether the node failed.
inline std::string sample_line(const cpu_sample& c, const storage_counts& sc, std::uint64_t leaders,
                               bool failed) {
  char reply[256];
  std::snprintf(reply, sizeof reply,
                "sample cpu=%.6f sys=%.6f allocs=%lld rss_kb=%ld cur_rss_kb=%ld entries=%llu "
                "syncs=%llu rounds=%llu leaders=%llu failed=%d\n",
                c.cpu_seconds, c.system_seconds, c.allocations ? static_cast<long long>(*c.allocations) : -1LL,
                c.max_rss_kb, c.rss_kb, static_cast<unsigned long long>(sc.entries),
                static_cast<unsigned long long>(sc.syncs), static_cast<unsigned long long>(sc.rounds),
                static_cast<unsigned long long>(leaders), failed ? 1 : 0);
  return reply;
}

/// Adds a follower's answer to "sample" to `s`; throws if the follower's node failed.
inline void add_sample_line(cluster_sample& s, const std::string& line) {
  auto f = parse_fields(line);
  s.cpu += f["cpu"];
  s.sys += f["sys"];
  if (s.allocations && f["allocs"] >= 0)
    *s.allocations += static_cast<std::uint64_t>(f["allocs"]);
  else
    s.allocations.reset();
  s.rss_kb += f["rss_kb"];
  s.cur_rss_kb += f["cur_rss_kb"];
  const auto count = [&f](const char* key) { return static_cast<std::uint64_t>(f[key]); };
  s.all_storage += storage_counts{count("entries"), count("syncs"), count("rounds")};
  s.follower_elections += count("leaders");
  if (f["failed"] != 0) throw std::runtime_error("a follower node failed: " + line);
}

// --- status -------------------------------------------------------------------------------------

inline constexpr std::string_view status_prefix = "status ";

/// A follower process's answer to "status": its node's state and the process's pid.
inline std::string status_line(const raft::node_status& s) {
  return std::string(status_prefix) + describe(s) + " (pid " + std::to_string(::getpid()) + ")\n";
}

/// The text of a "status" answer, without the leading word.
inline std::string status_text(const std::string& line) { return line.substr(status_prefix.size()); }

// --- the port exchange ----------------------------------------------------------------------------

/// Every process bound port 0. Reads each child's "port P" line (waiting up to `timeout`), adds
/// the children's ports to `ports` (which holds this process's own), tells every child the whole
/// map, and starts reading each child's answers on `io`. False, after saying why, if a child did
/// not start or is gone.
inline bool exchange_ports(follower_group& children, asio::io_context& io, port_map& ports,
                           std::chrono::milliseconds timeout) {
  for (auto& f : children.followers()) {
    const auto line = read_line_blocking(f->from, timeout);
    const auto port = line ? port_of(*line) : std::optional<std::uint16_t>();
    if (!port) {
      std::fprintf(stderr, "replication_bench: process %llu did not start\n",
                   static_cast<unsigned long long>(f->id.value));
      return false;
    }
    f->port = *port;
    ports[f->id] = f->port;
    f->reader = std::make_unique<asio::posix::stream_descriptor>(io, f->from);
  }
  const std::string peers = peers_line(ports);
  for (auto& f : children.followers())
    if (!write_all(f->to, peers)) {
      std::fprintf(stderr, "replication_bench: process %llu is gone\n", static_cast<unsigned long long>(f->id.value));
      return false;
    }
  return true;
}

}  // namespace raft_bench
