// examples/kv/network.hpp - the two ports of a server process (kv_server, sharded_kv_server):
// resolving HOST:PORT, listening with errors that say which port is taken, and the Raft
// transport on this process's own address in --peers.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <raft/core/types.hpp>
#include <raft/logger.hpp>
#include <raft/transport/tcp.hpp>

namespace kv {

/// Resolves HOST:PORT to one endpoint (numeric addresses need no lookup).
inline asio::ip::tcp::endpoint resolve(asio::io_context& io, const raft::tcp_address& at) {
  std::error_code ec;
  const auto address = asio::ip::make_address(at.host, ec);
  if (!ec) return {address, at.port};
  asio::ip::tcp::resolver resolver(io);
  return *resolver.resolve(at.host, std::to_string(at.port)).begin();  // throws if it cannot
}

/// Returns `open()`, which constructs what listens on `at`. Asio's "bind: Address already in
/// use" does not say which of the server's two ports is taken: this error does (`port_name` and
/// the `option` it was given by).
template <class Open>
auto listen_on(const char* port_name, const char* option, const raft::tcp_address& at, Open open)
    -> decltype(open()) {
  try {
    return open();
  } catch (const std::system_error& e) {
    const std::string where = std::string("the ") + port_name + " " + at.host + ":" + std::to_string(at.port) +
                              " (" + option + ")";
    if (e.code() == asio::error::address_in_use) throw std::runtime_error(where + " is already in use");
    throw std::runtime_error("cannot listen on " + where + ": " + e.code().message());
  }
}

/// The Raft side of a process: `Transport` (raft::tcp_transport, or raft::tls_transport with its
/// `security`) listening on `self`'s address in `peers` and connecting to every other one.
/// `own_address` names that address in the error of a taken port (each program its own words).
template <class Transport>
Transport open_raft_transport(asio::io_context& io, raft::node_id self,
                              const std::map<raft::node_id, raft::tcp_address>& peers, const char* own_address,
                              std::uint64_t cluster_id, raft::logger logger, typename Transport::security_type security = {}) {
  const raft::tcp_address& own = peers.at(self);
  auto others = peers;
  others.erase(self);
  raft::tcp_transport_options options;
  options.cluster_id = cluster_id;
  options.logger = std::move(logger);
  return listen_on("Raft port", own_address, own, [&] {
    return Transport(io.get_executor(), self, resolve(io, own), std::move(others), std::move(options),
                     std::move(security));
  });
}

}  // namespace kv
