// raft/transport/tcp.hpp - raft::tcp_transport, messages between processes over TCP.
//
// Models raft::transport (include/raft/concepts.hpp) with standalone Asio sockets and the wire
// codec of raft/transport/codec.hpp. Described in docs/transport.md; in short:
//   - one TCP connection per pair of nodes, dialled by the node with the lower id and used in
//     both directions; a handshake (magic, codec version, cluster id, node id) opens it, and a
//     mismatch closes it with a logged reason, so nodes of different clusters never talk;
//   - the dialler reconnects with exponential backoff (min..max); the acceptor waits;
//   - per peer, an outbound queue bounded in messages and bytes; when it is full the oldest
//     messages are dropped, so a slow or dead peer blocks nobody and costs bounded memory;
//   - per connection, a writer coroutine that encodes every queued message into one reused buffer
//     and writes it with one async_write, and a reader coroutine that reads into one reused
//     buffer, checks every frame's length against the limit before growing the buffer, decodes,
//     and puts the messages into the node's inbox; receive() swaps the inbox out;
//   - malformed, oversized or misaddressed input closes that connection (logged); a message whose
//     `from` is not the peer named in the handshake is dropped.
// Every piece of state is touched only on the executor given to the constructor (the node's);
// no locks. The state lives in a shared object the coroutines keep alive, so the transport
// object may be destroyed right after close() (its destructor closes); see docs/transport.md.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "raft/core/messages.hpp"
#include "raft/detail/asio_check.hpp"
#include "raft/detail/signal.hpp"
#include "raft/logger.hpp"
#include "raft/transport/codec.hpp"

namespace raft {
inline namespace v1 {

/// Where a peer listens.
struct tcp_address {
  std::string host;  ///< an IP address or a host name (resolved at every dial)
  std::uint16_t port = 0;
};

struct tcp_transport_options {
  /// Nodes talk only to nodes with the same cluster id (checked in the handshake).
  std::uint64_t cluster_id = 0;
  /// Largest frame body sent or accepted. A message that does not fit is dropped when sent; a
  /// peer announcing a longer frame is disconnected before anything is allocated for it.
  std::size_t max_frame_bytes = codec::default_max_frame_bytes;
  /// Wait between failed dials: starts at min, doubles after each failure, at most max.
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{2000};
  /// Time allowed for resolving, connecting and the handshake, on either side.
  std::chrono::milliseconds connect_timeout{3000};
  /// Per peer: messages waiting to be written (also while disconnected). Past either limit the
  /// oldest waiting messages are dropped.
  std::size_t max_queue_messages = 16384;
  std::size_t max_queue_bytes = std::size_t{64} << 20;
  /// Bytes one write gathers from the queue (at least one message is always taken).
  std::size_t max_write_batch_bytes = std::size_t{1} << 20;
  /// Where connection events and rejections are reported.
  raft::logger logger;
};

/// Counters, for tests and metrics (read on the transport's executor).
struct tcp_transport_stats {
  std::uint64_t messages_sent = 0;            ///< handed to a socket write
  std::uint64_t messages_received = 0;        ///< put into the inbox
  std::uint64_t dropped_queue_full = 0;       ///< oldest messages dropped from a full queue
  std::uint64_t dropped_too_large = 0;        ///< send() of a message over max_frame_bytes
  std::uint64_t dropped_forged = 0;           ///< received with `from` != handshake id, or `to` != self
  std::uint64_t connections_established = 0;  ///< handshakes completed, both directions
  std::uint64_t handshake_failures = 0;       ///< connections refused during the handshake
  std::uint64_t protocol_errors = 0;          ///< connections closed for malformed/oversized input
};

/// One node's endpoint of a TCP cluster. Models raft::transport.
class tcp_transport {
 public:
  using executor_type = asio::any_io_executor;

  /// Listens on `listen` (bound and listening when this returns; throws std::system_error if it
  /// cannot bind) and dials every peer of `peers` whose id is greater than `self`. Construct on
  /// `ex` or before `ex` runs; all work happens on `ex` (the node's executor).
  tcp_transport(executor_type ex, node_id self, const asio::ip::tcp::endpoint& listen,
                std::map<node_id, tcp_address> peers, tcp_transport_options opts = {})
      : s_(std::make_shared<state>(std::move(ex), self, std::move(opts))) {
    auto& a = s_->acceptor;
    a.open(listen.protocol());
    a.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    a.bind(listen);
    a.listen();
    s_->listen_endpoint = a.local_endpoint();
    spawn(s_, accept_loop(s_));
    for (auto& [id, address] : peers) set_peer_address(id, std::move(address));
  }

  tcp_transport(const tcp_transport&) = delete;
  tcp_transport& operator=(const tcp_transport&) = delete;
  /// Closes. Destroy on the executor (or while it does not run): see docs/transport.md.
  ~tcp_transport() { close(); }

  /// Queues `m` for `m.to` and returns at once. Lost if the queue overflows (oldest first), the
  /// message exceeds max_frame_bytes, or the connection breaks before it is written.
  void send(message m) {
    auto& s = *s_;
    if (s.closed || m.to == s.self || m.to == no_node) return;
    if (!codec::fits(m, s.opts.max_frame_bytes)) {
      ++s.stats.dropped_too_large;
      s.opts.logger.log(log_level::warning, "tcp_transport ", s.self, ": dropping a message to ",
                        m.to, " of ", codec::body_size(m), " bytes (max_frame_bytes ",
                        s.opts.max_frame_bytes, ")");
      return;
    }
    auto& p = s.peer_for(m.to);
    const std::size_t size = codec::frame_size(m);
    if (size > s.opts.max_queue_bytes || s.opts.max_queue_messages == 0) {
      ++s.stats.dropped_queue_full;
      return;
    }
    while (!p.queue.empty() && (p.queue.size() >= s.opts.max_queue_messages ||
                                p.queued_bytes + size > s.opts.max_queue_bytes)) {
      p.queued_bytes -= codec::frame_size(p.queue.front());
      p.queue.pop_front();
      ++s.stats.dropped_queue_full;
    }
    const bool was_empty = p.queue.empty();
    p.queue.push_back(std::move(m));
    p.queued_bytes += size;
    if (was_empty) p.wake.notify();
  }

  /// Waits for messages; moves all that arrived into `batch`. False once closed.
  asio::awaitable<bool> receive(std::vector<message>& batch) {
    auto s = s_;
    for (;;) {
      if (s->closed) co_return false;
      if (!s->inbox.empty()) {
        batch.swap(s->inbox);
        co_return true;
      }
      co_await s->arrived.wait();
    }
  }

  /// Stops listening, closes every connection, drops every queued message and ends a pending
  /// receive() (false). The coroutines finish as the executor runs their cancelled operations.
  /// Idempotent. Call on the executor.
  void close() {
    auto& s = *s_;
    if (s.closed) return;
    s.closed = true;
    std::error_code ignored;
    s.acceptor.close(ignored);
    for (auto& [id, p] : s.peers) {
      p->queue.clear();
      p->queued_bytes = 0;
      p->backoff.cancel();
      p->resolver.cancel();
      p->conn.reset();
      p->wake.notify();
    }
    for (auto& weak : s.live)
      if (auto c = weak.lock()) c->close();
    s.live.clear();
    s.inbox.clear();
    s.arrived.notify();
  }

  /// Sets or changes where peer `id` listens (used by the next dial). If `id` is greater than
  /// this node's id and no dialler runs for it yet, starts one.
  void set_peer_address(node_id id, tcp_address address) {
    auto& s = *s_;
    if (s.closed || id == s.self || id == no_node) return;
    auto& p = s.peer_for(id);
    p.address = std::move(address);
    if (s.self < id && !p.dialing) {
      p.dialing = true;
      spawn(s_, dial_loop(s_, &p));
    }
  }

  /// The address the transport listens on (with the port the system chose for port 0).
  [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const { return s_->listen_endpoint; }
  /// Whether a handshaken connection to `id` is up.
  [[nodiscard]] bool connected(node_id id) const {
    auto it = s_->peers.find(id);
    return it != s_->peers.end() && it->second->conn != nullptr;
  }
  [[nodiscard]] const tcp_transport_stats& stats() const noexcept { return s_->stats; }
  [[nodiscard]] node_id self() const noexcept { return s_->self; }

 private:
  using tcp = asio::ip::tcp;

  struct connection {
    explicit connection(const executor_type& ex) : socket(ex), watchdog(ex) {}
    tcp::socket socket;
    asio::steady_timer watchdog;  // bounds connect + handshake
    node_id peer;
    std::string remote;           // for log messages
    bool open = true;
    bool established = false;
    std::vector<std::byte> rbuf;  // reused by the reader
    std::vector<std::byte> wbuf;  // reused by the writer
    void close() {
      open = false;
      std::error_code ignored;
      socket.close(ignored);
      watchdog.cancel();
    }
  };

  struct peer {
    peer(node_id peer_id, const executor_type& ex)
        : id(peer_id), wake(ex), backoff(ex), resolver(ex) {}
    node_id id;
    std::optional<tcp_address> address;
    std::deque<message> queue;
    std::size_t queued_bytes = 0;
    std::shared_ptr<connection> conn;  // the established connection, if any
    detail::signal wake;               // queue became non-empty, or conn changed
    asio::steady_timer backoff;
    tcp::resolver resolver;
    bool dialing = false;
  };

  struct state {
    state(executor_type e, node_id id, tcp_transport_options o)
        : ex(std::move(e)), self(id), opts(std::move(o)), acceptor(ex), arrived(ex) {}
    executor_type ex;
    node_id self;
    tcp_transport_options opts;
    tcp::acceptor acceptor;
    tcp::endpoint listen_endpoint;
    detail::signal arrived;
    std::vector<message> inbox;
    bool closed = false;
    std::map<node_id, std::unique_ptr<peer>> peers;  // never erased: coroutines keep peer*
    std::vector<std::weak_ptr<connection>> live;     // every connection, for close()
    tcp_transport_stats stats;

    peer& peer_for(node_id id) {
      auto& slot = peers[id];
      if (!slot) slot = std::make_unique<peer>(id, ex);
      return *slot;
    }
    void track(const std::shared_ptr<connection>& c) {
      std::erase_if(live, [](const auto& w) { return w.expired(); });
      live.push_back(c);
    }
    template <class... Parts>
    void log(log_level l, const Parts&... parts) const {
      opts.logger.log(l, "tcp_transport ", self, ": ", parts...);
    }
  };

  static void spawn(const std::shared_ptr<state>& s, asio::awaitable<void> task) {
    asio::co_spawn(s->ex, std::move(task), [s](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        s->log(log_level::error, "internal error: ", ex.what());
      } catch (...) {
        s->log(log_level::error, "internal error");
      }
    });
  }

  static void arm_watchdog(const std::shared_ptr<state>& s, const std::shared_ptr<connection>& c,
                           peer* p) {
    c->watchdog.expires_after(s->opts.connect_timeout);
    c->watchdog.async_wait([s, c, p](std::error_code ec) {
      if (ec || c->established || !c->open) return;
      c->close();
      if (p) p->resolver.cancel();
    });
  }

  static std::string describe(const tcp::endpoint& ep) {
    std::ostringstream os;
    os << ep;
    return os.str();
  }

  /// Makes `c` the connection to `p`, replacing an older one, and starts its writer.
  static void install(const std::shared_ptr<state>& s, peer& p, const std::shared_ptr<connection>& c) {
    c->established = true;
    c->watchdog.cancel();
    c->peer = p.id;
    if (p.conn) {
      s->log(log_level::info, "replacing the connection with node ", p.id);
      p.conn->close();
    }
    p.conn = c;
    ++s->stats.connections_established;
    s->log(log_level::info, "connected with node ", p.id, " (", c->remote, ")");
    p.wake.notify();
    spawn(s, write_loop(s, &p, c));
  }

  static void uninstall(const std::shared_ptr<state>& s, peer& p, const std::shared_ptr<connection>& c) {
    c->close();
    if (p.conn == c) {
      p.conn.reset();
      if (!s->closed) s->log(log_level::info, "disconnected from node ", p.id);
    }
    p.wake.notify();
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> s) {
    std::error_code ec;
    asio::steady_timer pause(s->ex);
    while (!s->closed) {
      auto c = std::make_shared<connection>(s->ex);
      co_await s->acceptor.async_accept(c->socket, asio::redirect_error(asio::use_awaitable, ec));
      if (s->closed) co_return;
      if (ec) {
        // E.g. out of file descriptors: try again a little later rather than spin.
        s->log(log_level::warning, "accept failed: ", ec.message());
        pause.expires_after(s->opts.reconnect_backoff_min);
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      s->track(c);
      spawn(s, serve_inbound(s, c));
    }
  }

  static asio::awaitable<void> serve_inbound(std::shared_ptr<state> s, std::shared_ptr<connection> c) {
    std::error_code ec;
    c->remote = describe(c->socket.remote_endpoint(ec));
    arm_watchdog(s, c, nullptr);
    std::array<std::byte, codec::hello_bytes> h{};
    co_await asio::async_read(c->socket, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || s->closed || !c->open) {
      if (!s->closed) {
        ++s->stats.handshake_failures;
        s->log(log_level::warning, "inbound connection from ", c->remote,
               " closed during the handshake: ", c->open ? ec.message() : "timed out");
      }
      c->close();
      co_return;
    }
    codec::hello theirs;
    const char* why = nullptr;
    std::string detail;
    if (auto e = codec::decode_hello(h, theirs)) {
      why = "bad handshake: ";
      detail = e.message();
    } else if (theirs.cluster_id != s->opts.cluster_id) {
      why = "cluster id mismatch: ";
      detail = std::to_string(theirs.cluster_id) + " (ours " + std::to_string(s->opts.cluster_id) + ")";
    } else if (theirs.id == no_node || theirs.id == s->self) {
      why = "invalid node id: ";
      detail = std::to_string(theirs.id.value);
    } else if (!(theirs.id < s->self)) {
      why = "the lower id dials, but node ";
      detail = std::to_string(theirs.id.value) + " dialled node " + std::to_string(s->self.value);
    }
    if (why) {
      ++s->stats.handshake_failures;
      s->log(log_level::warning, "refusing inbound connection from ", c->remote, ": ", why, detail);
      c->close();
      co_return;
    }
    codec::encode_hello({s->opts.cluster_id, s->self}, h);
    co_await asio::async_write(c->socket, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || s->closed || !c->open) {
      c->close();
      co_return;
    }
    auto& p = s->peer_for(theirs.id);
    install(s, p, c);
    co_await read_loop(s, p, c);
    uninstall(s, p, c);
  }

  static asio::awaitable<void> dial_loop(std::shared_ptr<state> s, peer* pp) {
    auto& p = *pp;
    auto backoff = s->opts.reconnect_backoff_min;
    std::error_code ec;
    while (!s->closed) {
      const tcp_address address = *p.address;
      auto c = std::make_shared<connection>(s->ex);
      c->remote = address.host + ":" + std::to_string(address.port);
      s->track(c);
      arm_watchdog(s, c, &p);
      // Resolve (a literal address needs no resolver), connect, exchange hellos.
      std::vector<tcp::endpoint> endpoints;
      if (auto ip = asio::ip::make_address(address.host, ec); !ec) {
        endpoints.emplace_back(ip, address.port);
      } else {
        auto results = co_await p.resolver.async_resolve(
            address.host, std::to_string(address.port), asio::redirect_error(asio::use_awaitable, ec));
        if (!ec)
          for (const auto& r : results) endpoints.push_back(r.endpoint());
      }
      if (!ec && !s->closed && c->open)
        co_await asio::async_connect(c->socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
      std::array<std::byte, codec::hello_bytes> h{};
      if (!ec && !s->closed && c->open) {
        codec::encode_hello({s->opts.cluster_id, s->self}, h);
        co_await asio::async_write(c->socket, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec && !s->closed && c->open)
        co_await asio::async_read(c->socket, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
      if (s->closed) break;
      if (!ec && c->open) {
        codec::hello theirs;
        std::string why;
        if (auto e = codec::decode_hello(h, theirs))
          why = "bad handshake: " + e.message();
        else if (theirs.cluster_id != s->opts.cluster_id)
          why = "cluster id mismatch: " + std::to_string(theirs.cluster_id) + " (ours " +
                std::to_string(s->opts.cluster_id) + ")";
        else if (theirs.id != p.id)
          why = "expected node " + std::to_string(p.id.value) + ", node " +
                std::to_string(theirs.id.value) + " answered";
        if (!why.empty()) {
          ++s->stats.handshake_failures;
          s->log(log_level::warning, "refusing connection to ", c->remote, ": ", why);
          c->close();
        } else {
          backoff = s->opts.reconnect_backoff_min;
          install(s, p, c);
          co_await read_loop(s, p, c);
          uninstall(s, p, c);
        }
      } else {
        s->log(log_level::debug, "dialling node ", p.id, " at ", c->remote, " failed: ",
               c->open ? ec.message() : "timed out");
        c->close();
      }
      if (s->closed) break;
      // Wait before the next dial: min after a connection that worked, doubling after failures.
      p.backoff.expires_after(backoff);
      co_await p.backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!c->established) backoff = std::min(backoff * 2, s->opts.reconnect_backoff_max);
    }
    p.dialing = false;
  }

  /// Reads frames until the connection fails or sends something malformed.
  static asio::awaitable<void> read_loop(std::shared_ptr<state> s, peer& p, std::shared_ptr<connection> c) {
    constexpr std::size_t initial = std::size_t{64} << 10;
    auto& buf = c->rbuf;
    buf.resize(initial);
    std::size_t begin = 0, end = 0;
    std::error_code ec;
    for (;;) {
      // Take every complete frame in the buffer.
      std::size_t need = codec::frame_header_bytes;
      while (end - begin >= codec::frame_header_bytes) {
        const auto length =
            codec::read_frame_length(std::span<const std::byte, 4>(buf.data() + begin, 4));
        if (auto e = codec::check_frame_length(length, s->opts.max_frame_bytes)) {
          protocol_error(s, c, e, length);
          co_return;
        }
        need = codec::frame_header_bytes + length;
        if (end - begin < need) break;
        message m;
        if (auto e = codec::decode_body({buf.data() + begin + codec::frame_header_bytes, length}, m)) {
          protocol_error(s, c, e, length);
          co_return;
        }
        begin += need;
        need = codec::frame_header_bytes;
        deliver(*s, p, std::move(m));
      }
      // Make room for the rest of the current frame (its length is checked already).
      if (begin == end) {
        begin = end = 0;
        if (buf.size() > (std::size_t{1} << 20)) {
          buf.resize(initial);
          buf.shrink_to_fit();
        }
      } else if (begin > 0) {
        std::memmove(buf.data(), buf.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      if (buf.size() < need) buf.resize(need);
      const std::size_t n = co_await c->socket.async_read_some(
          asio::buffer(buf.data() + end, buf.size() - end), asio::redirect_error(asio::use_awaitable, ec));
      if (ec || s->closed || !c->open) co_return;
      end += n;
    }
  }

  static void protocol_error(const std::shared_ptr<state>& s, const std::shared_ptr<connection>& c,
                             std::error_code e, std::uint32_t length) {
    ++s->stats.protocol_errors;
    s->log(log_level::warning, "closing the connection with node ", c->peer, " (", c->remote,
           "): ", e.message(), " (frame of ", length, " bytes)");
    c->close();
  }

  static void deliver(state& s, peer& p, message&& m) {
    if (m.from != p.id || m.to != s.self) {
      ++s.stats.dropped_forged;
      s.log(log_level::debug, "dropping a message from ", m.from, " to ", m.to,
            " received from node ", p.id);
      return;
    }
    ++s.stats.messages_received;
    const bool was_empty = s.inbox.empty();
    s.inbox.push_back(std::move(m));
    if (was_empty) s.arrived.notify();
  }

  /// Writes the peer's queue through `c` until `c` closes or is replaced.
  static asio::awaitable<void> write_loop(std::shared_ptr<state> s, peer* pp, std::shared_ptr<connection> c) {
    auto& p = *pp;
    std::error_code ec;
    for (;;) {
      if (s->closed || !c->open || p.conn != c) co_return;
      if (p.queue.empty()) {
        co_await p.wake.wait();
        continue;
      }
      auto& out = c->wbuf;
      out.clear();
      while (!p.queue.empty() && (out.empty() || out.size() < s->opts.max_write_batch_bytes)) {
        const std::size_t before = out.size();
        codec::encode_frame(p.queue.front(), out);
        p.queued_bytes -= out.size() - before;
        p.queue.pop_front();
        ++s->stats.messages_sent;
      }
      co_await asio::async_write(c->socket, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        c->close();  // the reader sees it and cleans up
        co_return;
      }
      if (out.capacity() > 2 * s->opts.max_write_batch_bytes + (std::size_t{1} << 20)) {
        out.clear();
        out.shrink_to_fit();
      }
    }
  }

  std::shared_ptr<state> s_;
};

}  // namespace v1
}  // namespace raft
