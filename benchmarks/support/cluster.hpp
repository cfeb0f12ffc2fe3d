// benchmarks/support/cluster.hpp - the cluster's nodes in each configuration: their options
// (node 1 leads), their storage (memory or a directory each) and its counters, their transport
// (local mailboxes, or TCP on a port the kernel picks), and one node with everything it owns.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/tcp.hpp>

#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/transport/tcp.hpp>

#include "diagnostics.hpp"
#include "null_state_machine.hpp"
#include "params.hpp"

namespace raft_bench {

/// Followers' election timeouts are this many times node 1's, so that node 1 leads.
inline constexpr double follower_timeout_factor = 10;

inline raft::configuration founders_of(const params& p) {
  raft::configuration c;
  for (int i = 1; i <= p.nodes; ++i) c.voters.push_back(raft::node_id{std::uint64_t(i)});
  return c;
}

/// Node options. Node 1 has the short election timeout; the others wait 10x longer, so node 1
/// wins the first election and no follower campaigns while it leads. Elections won are counted
/// in `leaders`: the node logs "node N is leader in term T" at info level, on its own executor
/// (possibly another thread, hence the atomic). Warnings and errors go to stderr.
inline raft::options node_options(const params& p, const raft::configuration& founders, raft::node_id id,
                                  std::atomic<std::uint64_t>* leaders) {
  raft::options o;
  o.id = id;
  o.bootstrap = founders;
  const double election = id.value == 1 ? p.election_ms : p.election_ms * follower_timeout_factor;
  o.election_timeout_min = from_ms(election);
  o.election_timeout_max = from_ms(2 * election);
  o.heartbeat_interval = from_ms(p.heartbeat_ms);
  // Like a real deployment: a snapshot every --snapshot-every applied entries, then the log is
  // compacted behind it (keeping options' default trailing entries), so memory stays bounded.
  o.snapshot_entries = p.snapshot_every;
  o.logger.min_level = raft::log_level::info;
  o.logger.sink = [leaders](raft::log_level level, std::string_view text) {
    if (text.find(" is leader in term ") != std::string_view::npos) leaders->fetch_add(1);
    if (level >= raft::log_level::warning) log_to_stderr(level, text);
  };
  return o;
}

// --- storage ------------------------------------------------------------------------------------

/// Where node `id` of a file-storage run keeps its files, under the run's scratch directory.
inline std::filesystem::path node_directory(const std::filesystem::path& root, raft::node_id id) {
  return root / ("node-" + std::to_string(id.value));
}

/// A fresh storage: a file_storage in `dir` (--fsync as given), or an empty memory_storage.
template <class Storage>
std::unique_ptr<Storage> make_storage(const params& p, const std::filesystem::path& dir) {
  if constexpr (std::is_same_v<Storage, raft::file_storage>) {
    raft::file_storage_options o;
    o.fsync = p.fsync;
    return std::make_unique<raft::file_storage>(dir, std::move(o));
  } else {
    (void)p;
    (void)dir;
    return std::make_unique<Storage>();
  }
}

/// Log writes and syncs of a file_storage so far (zeros for other storage).
struct storage_counts {
  std::uint64_t entries = 0;
  std::uint64_t syncs = 0;
  std::uint64_t rounds = 0;  // writer-thread rounds: one write (and one sync) per group commit

  storage_counts& operator+=(const storage_counts& o) {
    entries += o.entries;
    syncs += o.syncs;
    rounds += o.rounds;
    return *this;
  }
  friend storage_counts operator-(const storage_counts& a, const storage_counts& b) {
    return {a.entries - b.entries, a.syncs - b.syncs, a.rounds - b.rounds};
  }
};

template <class Storage>
storage_counts counts_of(const Storage& s) {
  if constexpr (std::is_same_v<Storage, raft::file_storage>) {
    const auto st = s.stats();
    return {st.entries_written, st.syncs, st.write_rounds};
  } else {
    (void)s;
    return {};
  }
}

/// What the measurement window needs from every process of the cluster, summed over them.
struct cluster_sample {
  double cpu = 0;
  double sys = 0;
  std::optional<std::uint64_t> allocations;
  double rss_kb = 0;      // peak (ru_maxrss)
  double cur_rss_kb = 0;  // resident now
  storage_counts leader_storage, all_storage;
  std::uint64_t follower_elections = 0;
};

// --- transport ----------------------------------------------------------------------------------

inline raft::tcp_transport_options transport_options(const params& p) {
  raft::tcp_transport_options o;
  o.cluster_id = p.cluster_id;
  o.logger.min_level = raft::log_level::warning;
  o.logger.sink = log_to_stderr;
  return o;
}

/// A tcp_transport for node `id` bound to port 0 of 127.0.0.1: the kernel picks a free port, so
/// none is guessed. The peers' addresses are set once every process has reported its port.
inline std::unique_ptr<raft::tcp_transport> make_tcp_transport(const params& p, raft::node_id id,
                                                               asio::any_io_executor ex) {
  const asio::ip::tcp::endpoint any_port(asio::ip::address_v4::loopback(), 0);
  return std::make_unique<raft::tcp_transport>(ex, id, any_port, std::map<raft::node_id, raft::tcp_address>{},
                                               transport_options(p));
}

/// Node `id`'s transport on `ex`: a tcp_transport on a port the kernel picks, or a mailbox on
/// `network`.
template <class Transport>
std::unique_ptr<Transport> make_transport(const params& p, raft::node_id id, asio::any_io_executor ex,
                                          raft::local_network& network) {
  if constexpr (std::is_same_v<Transport, raft::tcp_transport>) {
    (void)network;
    return make_tcp_transport(p, id, ex);
  } else {
    return std::make_unique<raft::local_transport>(network, id, ex);
  }
}

/// Every node's TCP port on 127.0.0.1.
using port_map = std::map<raft::node_id, std::uint16_t>;

/// Tells `transport` where every node listens (its own entry included, as every process gets the
/// same map).
inline void set_peer_ports(raft::tcp_transport& transport, const port_map& ports) {
  for (auto [id, port] : ports) transport.set_peer_address(id, raft::tcp_address{"127.0.0.1", port});
}

// --- one node -----------------------------------------------------------------------------------

/// One node of the cluster hosted in this process, with what it owns. Members are destroyed in
/// reverse: the node first, then its transport and storage.
template <class Storage, class Transport>
struct cluster_member {
  using node_type = raft::node<null_state_machine, Storage, Transport>;
  asio::any_io_executor ex;  // the node's executor: the io_context, or a strand of it
  null_state_machine sm;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<node_type> node;
};

/// Node `id` on executor `ex`, its storage in `dir` (file storage), talking through `transport`.
template <class Storage, class Transport>
std::unique_ptr<cluster_member<Storage, Transport>> make_member(const params& p, raft::node_id id,
                                                                asio::any_io_executor ex,
                                                                const std::filesystem::path& dir,
                                                                std::unique_ptr<Transport> transport,
                                                                std::atomic<std::uint64_t>* leaders) {
  using member = cluster_member<Storage, Transport>;
  auto m = std::make_unique<member>();
  m->ex = ex;
  m->storage = make_storage<Storage>(p, dir);
  m->transport = std::move(transport);
  raft::options options = node_options(p, founders_of(p), id, leaders);
  m->node = std::make_unique<typename member::node_type>(ex, std::move(options), m->sm, *m->storage,
                                                         *m->transport);
  return m;
}

}  // namespace raft_bench
