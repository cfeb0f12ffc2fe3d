// benchmarks/support/follower_node.hpp - the hidden `--role follower` mode of --transport
// tcp-procs: one node in a process of its own, driven by the parent over stdin and stdout with
// the lines of follower_protocol.hpp. It exits when told to stop or when stdin reaches end of file
// (the parent is gone or done).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <system_error>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/transport/tcp.hpp>

#include "cluster.hpp"
#include "diagnostics.hpp"
#include "follower_processes.hpp"
#include "follower_protocol.hpp"
#include "params.hpp"
#include "process_usage.hpp"

namespace raft_bench {

/// Node p.id on one thread, its storage in p.node_dir, its transport on a port the kernel picks.
template <class Storage>
class follower_node {
 public:
  explicit follower_node(const params& p)
      : member_(make_member<Storage>(p, own_id(p), io_.get_executor(), p.node_dir,
                                     make_tcp_transport(p, own_id(p), io_.get_executor()), &leaders_)) {}

  /// Serves the parent until it says stop or goes away; the process's exit status.
  int run() {
    if (!write_all(1, port_line(member_->transport->local_endpoint().port()))) return 1;
    asio::co_spawn(io_, serve(), [](std::exception_ptr e) {
      if (!e) return;
      print_exception("replication_bench (follower)", e);
      std::_Exit(1);
    });
    io_.run();
    return rc_;
  }

 private:
  static raft::node_id own_id(const params& p) { return raft::node_id{p.id}; }

  asio::awaitable<void> serve() {
    std::string buffer;
    for (;;) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(in_, asio::dynamic_buffer(buffer), '\n',
                                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // end of file: the parent is gone or done
      const std::string line = buffer.substr(0, n - 1);
      buffer.erase(0, n);
      if (!answer(line)) break;
    }
    if (started_) {
      co_await member_->node->async_stop();
      if (member_->node->failure()) rc_ = 1;
    } else {
      member_->transport->close();
    }
    std::error_code ignored;
    in_.close(ignored);
  }

  /// Handles one request from the parent; false when it is time to stop.
  bool answer(const std::string& line) {
    auto& node = *member_->node;
    if (is_peers_line(line)) {
      set_peer_ports(*member_->transport, ports_of_peers_line(line));
      node.start();
      started_ = true;
      return true;
    }
    if (line == "sample")
      return write_all(1, sample_line(sample_cpu(), counts_of(*member_->storage), leaders_.load(),
                                      bool(node.failure())));
    if (line == "status") return write_all(1, status_line(node.status()));
    return line != "stop";
  }

  asio::io_context io_{1};
  std::atomic<std::uint64_t> leaders_{0};  // elections this node won
  std::unique_ptr<cluster_member<Storage, raft::tcp_transport>> member_;
  asio::posix::stream_descriptor in_{io_, ::dup(0)};  // the parent's requests
  bool started_ = false;
  int rc_ = 0;
};

/// The whole life of a follower process.
template <class Storage>
int follower_main(const params& p) {
  if (::getppid() != static_cast<pid_t>(p.parent_pid)) return 1;  // orphaned already
  ::signal(SIGPIPE, SIG_IGN);
  follower_node<Storage> follower(p);
  return follower.run();
}

}  // namespace raft_bench
