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
//   - the hot path skips the executor: an idle plain TCP connection is written from send() (or
//     flush(), after send_batched()) with one non-blocking write, the writer coroutine finishing
//     only what the kernel did not take; a read hands its messages to a waiting receive() at
//     once (the node handles them inside the reader's turn);
//   - malformed, oversized or misaddressed input closes that connection (logged); a message whose
//     `from` is not the peer named in the handshake is dropped;
//   - a write that does not finish within write_timeout closes the connection, and TCP keep-alive
//     and TCP_USER_TIMEOUT make the kernel drop a connection to a peer that vanished;
//   - peers can be added and removed at run time (add_peer / remove_peer).
// The class template basic_tcp_transport<Security> takes how a connection is secured: the stream
// type, a step after connecting (e.g. a TLS handshake) and a check that the peer may be the node
// it claims to be. tcp_transport = basic_tcp_transport<plain_tcp> (no security, no dependency but
// Asio); raft/transport/tls.hpp adds mutual_tls and tls_transport. The framing code is the same.
// Every piece of state is touched only on the executor given to the constructor (the node's);
// no locks. The state lives in a shared object the coroutines keep alive, so the transport
// object may be destroyed right after close() (its destructor closes); see docs/transport.md.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
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
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#if __has_include(<netinet/tcp.h>) && __has_include(<netinet/in.h>)
#include <netinet/in.h>
#include <netinet/tcp.h>  // TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT
#endif

#include "raft/detail/chunked_deque.hpp"
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
  /// Time allowed for resolving, connecting and the handshake (TLS included), on either side.
  std::chrono::milliseconds connect_timeout{3000};
  /// A write that has not completed after this long closes the connection (the dialler then
  /// dials again): a peer that stopped reading cannot hold a connection forever. Also given to
  /// the kernel as TCP_USER_TIMEOUT (Linux): data unacknowledged for this long drops the
  /// connection, so a peer whose machine vanished is noticed while we send to it. Zero: neither.
  std::chrono::milliseconds write_timeout{10000};
  /// TCP keep-alive on every connection, for connections that carry nothing for a while (two
  /// followers exchange no messages): the kernel probes after `keepalive_idle` of silence, every
  /// `keepalive_interval`, and drops the connection after `keepalive_probes` unanswered probes.
  /// A zero `keepalive_idle` turns keep-alive off. (Idle, interval and count are set where the
  /// platform has TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT; elsewhere the system defaults apply.)
  std::chrono::seconds keepalive_idle{10};
  std::chrono::seconds keepalive_interval{5};
  int keepalive_probes = 3;
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
  std::uint64_t dropped_removed = 0;          ///< send() to a peer taken out by remove_peer()
  std::uint64_t connections_established = 0;  ///< handshakes completed, both directions
  std::uint64_t handshake_failures = 0;       ///< connections refused during the handshake (TLS included)
  std::uint64_t protocol_errors = 0;          ///< connections closed for malformed/oversized input
  std::uint64_t write_timeouts = 0;           ///< connections closed because a write took too long
};

/// How basic_tcp_transport secures a connection. A model provides
///   - `stream_type`: what a connection reads and writes (a TCP socket, or a stream over one);
///     its `lowest_layer()` is the TCP socket (connected, accepted, closed by the transport);
///   - `make_stream(executor)`: a new, unconnected stream;
///   - `secure(stream, we_dialled)`: runs once the TCP connection is up, before the Raft
///     handshake (a TLS handshake, say); co_returns why the connection must be refused, or "";
///   - `check_peer(stream, id)`: after `secure`, whether the other end may be node `id` (the
///     node dialled, or the id its handshake claims): why not, or "".
/// Called on the transport's executor only; the object lives as long as the transport's state.
template <class S>
concept tcp_connection_security =
    requires(S& s, typename S::stream_type& stream, const asio::any_io_executor& ex, node_id id, bool dialled) {
      { s.make_stream(ex) } -> std::same_as<typename S::stream_type>;
      { stream.lowest_layer() } -> std::same_as<asio::ip::tcp::socket::lowest_layer_type&>;
      { s.secure(stream, dialled) } -> std::same_as<asio::awaitable<std::string>>;
      { s.check_peer(stream, id) } -> std::same_as<std::string>;
    };

/// No security: a plain TCP socket, anyone who can reach the port can claim any id. The default.
struct plain_tcp {
  using stream_type = asio::ip::tcp::socket;
  [[nodiscard]] stream_type make_stream(const asio::any_io_executor& ex) const { return stream_type(ex); }
  asio::awaitable<std::string> secure(stream_type&, bool /*we_dialled*/) const { co_return std::string(); }
  [[nodiscard]] std::string check_peer(stream_type&, node_id) const { return {}; }
};

static_assert(tcp_connection_security<plain_tcp>);

namespace detail {
/// An integer socket option (a SettableSocketOption) for the TCP_* options Asio does not name.
template <int Level, int Name>
struct int_socket_option {
  int value = 0;
  template <class P> int level(const P&) const { return Level; }
  template <class P> int name(const P&) const { return Name; }
  template <class P> const int* data(const P&) const { return &value; }
  template <class P> std::size_t size(const P&) const { return sizeof value; }
};

/// Memory for one socket operation at a time. A connection has at most one read and one write in
/// progress; each reuses its own block (handed to Asio through op_allocator) instead of asking
/// the heap for every operation, so a stream of messages allocates nothing per message.
class op_memory {
 public:
  op_memory() = default;
  op_memory(const op_memory&) = delete;
  op_memory& operator=(const op_memory&) = delete;
  void* allocate(std::size_t n) {
    if (in_use_ || n > sizeof storage_) return ::operator new(n);
    in_use_ = true;
    return storage_;
  }
  void deallocate(void* p) noexcept {
    if (p == storage_)
      in_use_ = false;
    else
      ::operator delete(p);
  }

 private:
  alignas(std::max_align_t) unsigned char storage_[1024];
  bool in_use_ = false;
};

template <class T>
class op_allocator {
 public:
  using value_type = T;
  explicit op_allocator(op_memory& m) noexcept : m_(&m) {}
  template <class U>
  op_allocator(const op_allocator<U>& o) noexcept : m_(o.m_) {}
  T* allocate(std::size_t n) { return static_cast<T*>(m_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t) noexcept { m_->deallocate(p); }
  friend bool operator==(const op_allocator& a, const op_allocator& b) noexcept { return a.m_ == b.m_; }

 private:
  template <class U>
  friend class op_allocator;
  op_memory* m_;
};
}  // namespace detail

/// One node's endpoint of a cluster over TCP connections secured by `Security`. Models
/// raft::transport. Use tcp_transport (plain) or tls_transport (raft/transport/tls.hpp).
template <tcp_connection_security Security>
class basic_tcp_transport {
 public:
  using executor_type = asio::any_io_executor;
  using security_type = Security;

  /// Listens on `listen` (bound and listening when this returns; throws std::system_error if it
  /// cannot bind) and dials every peer of `peers` whose id is greater than `self`. Construct on
  /// `ex` or before `ex` runs; all work happens on `ex` (the node's executor).
  basic_tcp_transport(executor_type ex, node_id self, const asio::ip::tcp::endpoint& listen,
                      std::map<node_id, tcp_address> peers, tcp_transport_options opts = {},
                      Security security = Security())
      : s_(std::make_shared<state>(std::move(ex), self, std::move(opts), std::move(security))) {
    auto& a = s_->acceptor;
    a.open(listen.protocol());
    a.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    a.bind(listen);
    a.listen();
    s_->listen_endpoint = a.local_endpoint();
    spawn(s_, accept_loop(s_));
    for (auto& [id, address] : peers) add_peer(id, std::move(address));
  }

  basic_tcp_transport(const basic_tcp_transport&) = delete;
  basic_tcp_transport& operator=(const basic_tcp_transport&) = delete;
  /// Closes. Destroy on the executor (or while it does not run): see docs/transport.md.
  ~basic_tcp_transport() { close(); }

  /// Queues `m` for `m.to` and returns at once. Lost if the queue overflows (oldest first), the
  /// message exceeds max_frame_bytes, `m.to` was removed, or the connection breaks before it is
  /// written.
  void send(message m) {
    if (peer* p = enqueue(std::move(m))) write_soon(*p);
  }

  /// Like send(), but the message may wait in its queue until the next flush(): the messages of
  /// one event go out together, one write per peer. The caller promises a flush() before it
  /// leaves the executor (raft::node flushes at the end of every event).
  void send_batched(message m) {
    peer* p = enqueue(std::move(m));
    if (p && !p->dirty) {
      p->dirty = true;
      s_->dirty.push_back(p);
    }
  }

  /// Writes what send_batched() queued (see send()).
  void flush() {
    auto& s = *s_;
    for (peer* p : s.dirty) {
      p->dirty = false;
      write_soon(*p);
    }
    s.dirty.clear();
  }

 private:
  struct connection;
  struct peer;
  struct state;

  /// Queues `m` for its peer; returns the peer, or nullptr if `m` was dropped.
  peer* enqueue(message&& m) {
    auto& s = *s_;
    if (s.closed || m.to == s.self || m.to == no_node) return nullptr;
    if (!codec::fits(m, s.opts.max_frame_bytes)) {
      ++s.stats.dropped_too_large;
      s.opts.logger.log(log_level::warning, "tcp_transport ", s.self, ": dropping a message to ",
                        m.to, " of ", codec::body_size(m), " bytes (max_frame_bytes ",
                        s.opts.max_frame_bytes, ")");
      return nullptr;
    }
    auto& p = s.peer_for(m.to);
    if (p.removed) {
      ++s.stats.dropped_removed;
      return nullptr;
    }
    const std::size_t size = codec::frame_size(m);
    if (size > s.opts.max_queue_bytes || s.opts.max_queue_messages == 0) {
      ++s.stats.dropped_queue_full;
      return nullptr;
    }
    while (!p.queue.empty() && (p.queue.size() >= s.opts.max_queue_messages ||
                                p.queued_bytes + size > s.opts.max_queue_bytes)) {
      p.queued_bytes -= codec::frame_size(p.queue.front());
      p.queue.pop_front();
      ++s.stats.dropped_queue_full;
    }
    p.queue.push_back(std::move(m));
    p.queued_bytes += size;
    return &p;
  }

  /// Gets `p`'s queue written: at once when its connection is idle (plain TCP: a non-blocking
  /// write from here, the writer coroutine takes over only what the socket did not accept),
  /// else by the writer, which takes the queue after its current write.
  void write_soon(peer& p) {
    connection* c = p.conn.get();
    if (c == nullptr || !c->open) return;                 // install() wakes the writer
    if (c->writing || c->wdone < c->wbuf.size()) return;  // the writer is at work
    if (c->direct) return write_now(*s_, p, *c);
    p.wake.notify();
  }

 public:

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
      p->dialling.reset();
      p->wake.notify();
    }
    for (auto& weak : s.live)
      if (auto c = weak.lock()) c->close();
    s.live.clear();
    s.inbox.clear();
    for (peer* p : s.dirty) p->dirty = false;
    s.dirty.clear();
    s.arrived.notify();
  }

  /// Makes `id` a peer, or changes where it listens (the next dial uses the new address). If
  /// `id` is greater than this node's id, this node dials it (a dialler starts unless one runs);
  /// otherwise `id` dials us and the address is only kept. Undoes remove_peer(id). For a member
  /// added at run time: add_peer on every node, and the new node lists the others.
  void add_peer(node_id id, tcp_address address) {
    auto& s = *s_;
    if (s.closed || id == s.self || id == no_node) return;
    auto& p = s.peer_for(id);
    p.removed = false;
    p.address = std::move(address);
    if (s.self < id && !p.dialing) {
      p.dialing = true;
      spawn(s_, dial_loop(s_, &p));
    }
  }

  /// The same as add_peer (another name for it).
  void set_peer_address(node_id id, tcp_address address) { add_peer(id, std::move(address)); }

  /// Forgets peer `id`: closes its connection (or a dial in progress), stops dialling it, drops
  /// its queued messages; later send()s to it are dropped (stats().dropped_removed), and an
  /// inbound connection claiming to be `id` is refused, until add_peer(id, ...).
  void remove_peer(node_id id) {
    auto& s = *s_;
    if (s.closed || id == s.self || id == no_node) return;
    auto& p = s.peer_for(id);
    if (!p.removed) s.log(log_level::info, "removing node ", id);
    p.removed = true;
    p.address.reset();
    p.queue.clear();
    p.queued_bytes = 0;
    p.backoff.cancel();
    p.resolver.cancel();
    if (p.dialling) p.dialling->close();
    if (p.conn) p.conn->close();  // its reader ends and uninstalls it
    p.wake.notify();
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
  /// The connection security object (e.g. mutual_tls, to reuse its TLS context).
  [[nodiscard]] Security& security() noexcept { return s_->security; }

 private:
  using tcp = asio::ip::tcp;
  using stream_type = typename Security::stream_type;

  struct connection {
    connection(Security& security, const executor_type& ex)
        : stream(security.make_stream(ex)), watchdog(ex), write_timer(ex) {}
    stream_type stream;
    asio::steady_timer watchdog;     // bounds connect + security + handshake
    asio::steady_timer write_timer;  // bounds each write (see watch_write)
    bool writing = false;            // an asynchronous write is in progress
    bool direct = false;             // write_now() may write (a non-blocking plain TCP socket)
    std::size_t wdone = 0;           // bytes of wbuf written; the writer writes the rest
    bool write_watched = false;      // write_timer is armed
    asio::steady_timer::time_point write_started{};
    std::size_t write_bytes = 0;
    node_id peer;
    std::string remote;           // for log messages
    bool open = true;
    bool established = false;
    std::vector<std::byte> rbuf;  // reused by the reader
    std::vector<std::byte> wbuf;  // reused by the writer
    detail::op_memory read_memory;   // the reader's socket operation
    detail::op_memory write_memory;  // the writer's socket operation
    auto& socket() { return stream.lowest_layer(); }
    void close() {
      open = false;
      std::error_code ignored;
      stream.lowest_layer().close(ignored);
      watchdog.cancel();
      write_timer.cancel();
    }
  };

  struct peer {
    peer(node_id peer_id, const executor_type& ex)
        : id(peer_id), wake(ex), backoff(ex), resolver(ex) {}
    node_id id;
    std::optional<tcp_address> address;
    detail::chunked_deque<message> queue;
    std::size_t queued_bytes = 0;
    std::shared_ptr<connection> conn;      // the established connection, if any
    std::shared_ptr<connection> dialling;  // a dial in progress, if any
    detail::signal wake;                   // queue became non-empty, or conn changed
    asio::steady_timer backoff;
    tcp::resolver resolver;
    bool dialing = false;  // a dial_loop runs for this peer
    bool removed = false;  // remove_peer() was called (and add_peer() not since)
    bool dirty = false;    // in state::dirty: send_batched() queued, flush() writes
  };

  struct state {
    state(executor_type e, node_id id, tcp_transport_options o, Security sec)
        : ex(std::move(e)), self(id), opts(std::move(o)), security(std::move(sec)), acceptor(ex), arrived(ex) {}
    executor_type ex;
    node_id self;
    tcp_transport_options opts;
    Security security;
    tcp::acceptor acceptor;
    tcp::endpoint listen_endpoint;
    detail::signal arrived;
    std::vector<message> inbox;
    std::vector<peer*> dirty;  // peers with messages from send_batched(), for flush()
    bool closed = false;
    std::map<node_id, std::unique_ptr<peer>> peers;  // never erased: coroutines keep peer*
    std::vector<std::weak_ptr<connection>> live;     // every connection, for close()
    tcp_transport_stats stats;

    peer& peer_for(node_id id) {
      auto& slot = peers[id];
      if (!slot) slot = std::make_unique<peer>(id, ex);
      return *slot;
    }
    [[nodiscard]] bool is_removed(node_id id) const {
      auto it = peers.find(id);
      return it != peers.end() && it->second->removed;
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

  /// No delay (a write is a whole batch already), keep-alive, TCP_USER_TIMEOUT. Best effort: a
  /// platform without an option just does without it.
  static void configure_socket(const state& s, connection& c) {
    auto& sock = c.socket();
    std::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (s.opts.keepalive_idle.count() > 0) {
      sock.set_option(asio::socket_base::keep_alive(true), ignored);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
      sock.set_option(detail::int_socket_option<IPPROTO_TCP, TCP_KEEPIDLE>{clamp_int(s.opts.keepalive_idle.count())}, ignored);
      sock.set_option(detail::int_socket_option<IPPROTO_TCP, TCP_KEEPINTVL>{clamp_int(std::max<std::int64_t>(1, s.opts.keepalive_interval.count()))}, ignored);
      sock.set_option(detail::int_socket_option<IPPROTO_TCP, TCP_KEEPCNT>{std::max(1, s.opts.keepalive_probes)}, ignored);
#endif
    }
#if defined(TCP_USER_TIMEOUT)
    if (s.opts.write_timeout.count() > 0)
      sock.set_option(detail::int_socket_option<IPPROTO_TCP, TCP_USER_TIMEOUT>{clamp_int(s.opts.write_timeout.count())}, ignored);
#endif
  }

  static int clamp_int(std::int64_t v) { return static_cast<int>(std::clamp<std::int64_t>(v, 0, 1 << 30)); }

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
    if constexpr (std::is_same_v<stream_type, tcp::socket>) {
      // Writes from send()/flush() must never block: a socket the kernel will not take more
      // from says so (would_block) and the writer coroutine waits for it instead.
      std::error_code ec;
      c->socket().non_blocking(true, ec);
      c->direct = !ec;
    }
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
      auto c = std::make_shared<connection>(s->security, s->ex);
      co_await s->acceptor.async_accept(c->socket(), asio::redirect_error(asio::use_awaitable, ec));
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

  /// Counts, logs and closes an inbound connection refused during the handshake.
  /// (`verb`: "refusing" when a check of ours failed, "closing" when the security step failed,
  /// which may be the other end's refusal.)
  static void refuse_inbound(const std::shared_ptr<state>& s, const std::shared_ptr<connection>& c,
                             const std::string& why, const char* verb = "refusing") {
    ++s->stats.handshake_failures;
    s->log(log_level::warning, verb, " inbound connection from ", c->remote, ": ", why);
    c->close();
  }

  static asio::awaitable<void> serve_inbound(std::shared_ptr<state> s, std::shared_ptr<connection> c) {
    std::error_code ec;
    c->remote = describe(c->socket().remote_endpoint(ec));
    arm_watchdog(s, c, nullptr);
    configure_socket(*s, *c);
    // 1. The security step (nothing for plain TCP; the TLS handshake and certificate chain check).
    std::string why = co_await s->security.secure(c->stream, false);
    if (s->closed) {
      c->close();
      co_return;
    }
    if (!c->open) why = "timed out before the handshake was complete";
    if (!why.empty()) {
      refuse_inbound(s, c, why, "closing");
      co_return;
    }
    // 2. Their hello.
    std::array<std::byte, codec::hello_bytes> h{};
    co_await asio::async_read(c->stream, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
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
    if (auto e = codec::decode_hello(h, theirs)) {
      why = "bad handshake: " + e.message();
    } else if (theirs.cluster_id != s->opts.cluster_id) {
      why = "cluster id mismatch: " + std::to_string(theirs.cluster_id) + " (ours " +
            std::to_string(s->opts.cluster_id) + ")";
    } else if (theirs.id == no_node || theirs.id == s->self) {
      why = "invalid node id: " + std::to_string(theirs.id.value);
    } else if (!(theirs.id < s->self)) {
      why = "the lower id dials, but node " + std::to_string(theirs.id.value) + " dialled node " +
            std::to_string(s->self.value);
    } else if (s->is_removed(theirs.id)) {
      why = "node " + std::to_string(theirs.id.value) + " was removed (remove_peer)";
    } else if (auto refusal = s->security.check_peer(c->stream, theirs.id); !refusal.empty()) {
      why = std::move(refusal);
    }
    if (!why.empty()) {
      refuse_inbound(s, c, why);
      co_return;
    }
    // 3. Our hello; then the connection is up.
    codec::encode_hello({s->opts.cluster_id, s->self}, h);
    co_await asio::async_write(c->stream, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || s->closed || !c->open || s->is_removed(theirs.id)) {
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
    while (!s->closed && !p.removed && p.address) {
      const tcp_address address = *p.address;
      auto c = std::make_shared<connection>(s->security, s->ex);
      c->remote = address.host + ":" + std::to_string(address.port);
      s->track(c);
      p.dialling = c;
      arm_watchdog(s, c, &p);
      auto going = [&] { return !ec && !s->closed && c->open; };
      std::string refusal;     // the security step or a check failed: a warning
      bool secured = false;    // the security step passed
      bool reached = false;    // the TCP connection was up
      // Resolve (a literal address needs no resolver), connect.
      std::vector<tcp::endpoint> endpoints;
      if (auto ip = asio::ip::make_address(address.host, ec); !ec) {
        endpoints.emplace_back(ip, address.port);
      } else {
        ec.clear();
        auto results = co_await p.resolver.async_resolve(
            address.host, std::to_string(address.port), asio::redirect_error(asio::use_awaitable, ec));
        if (!ec)
          for (const auto& r : results) endpoints.push_back(r.endpoint());
      }
      if (going())
        co_await asio::async_connect(c->socket(), endpoints, asio::redirect_error(asio::use_awaitable, ec));
      // Secure the connection and check that the other end may be the node we dialled, before
      // telling it anything.
      if (going()) {
        reached = true;
        configure_socket(*s, *c);
        refusal = co_await s->security.secure(c->stream, true);
        secured = refusal.empty();
        if (secured && going()) refusal = s->security.check_peer(c->stream, p.id);
      }
      // Exchange hellos.
      std::array<std::byte, codec::hello_bytes> h{};
      if (refusal.empty() && going()) {
        codec::encode_hello({s->opts.cluster_id, s->self}, h);
        co_await asio::async_write(c->stream, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
      }
      if (refusal.empty() && going())
        co_await asio::async_read(c->stream, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
      p.dialling.reset();
      if (s->closed || p.removed) {
        c->close();
        break;
      }
      if (refusal.empty() && going()) {
        codec::hello theirs;
        if (auto e = codec::decode_hello(h, theirs))
          refusal = "bad handshake: " + e.message();
        else if (theirs.cluster_id != s->opts.cluster_id)
          refusal = "cluster id mismatch: " + std::to_string(theirs.cluster_id) + " (ours " +
                    std::to_string(s->opts.cluster_id) + ")";
        else if (theirs.id != p.id)
          refusal = "expected node " + std::to_string(p.id.value) + ", node " +
                    std::to_string(theirs.id.value) + " answered";
      }
      if (!c->open) {
        s->log(log_level::debug, "dialling node ", p.id, " at ", c->remote, " failed: timed out");
      } else if (!refusal.empty()) {
        ++s->stats.handshake_failures;
        s->log(log_level::warning, secured ? "refusing" : "closing", " the connection to node ", p.id, " at ",
               c->remote, ": ", refusal);
        c->close();
      } else if (ec) {
        // After the TCP connect, a failure usually means the peer refused us (its log says why).
        s->log(reached ? log_level::info : log_level::debug, "dialling node ", p.id, " at ", c->remote,
               " failed", reached ? " during the handshake: " : ": ", ec.message());
        c->close();
      } else {
        backoff = s->opts.reconnect_backoff_min;
        install(s, p, c);
        co_await read_loop(s, p, c);
        uninstall(s, p, c);
      }
      if (s->closed || p.removed) break;
      // Wait before the next dial: min after a connection that worked, doubling after failures.
      p.backoff.expires_after(backoff);
      co_await p.backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      ec.clear();
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
      // Hand what this read brought to the node's receive() right here, not through the
      // executor: the node handles it (and flushes its replies) before this reader reads again.
      if (!s->inbox.empty()) {
        s->arrived.notify_now();
        if (s->closed || !c->open) co_return;
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
      const std::size_t n = co_await c->stream.async_read_some(
          asio::buffer(buf.data() + end, buf.size() - end),
          asio::bind_allocator(detail::op_allocator<void>(c->read_memory),
                               asio::redirect_error(asio::use_awaitable, ec)));
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
    s.inbox.push_back(std::move(m));
  }

  /// Closes `c` if a write is still running write_timeout after it started. The timer is armed
  /// when a write starts and none is armed; when it fires during a later write it re-arms for
  /// that write's deadline. So a stream of quick writes costs a clock read each, not a timer
  /// operation each.
  static void watch_write(const std::shared_ptr<state>& s, const std::shared_ptr<connection>& c,
                          asio::steady_timer::time_point deadline) {
    c->write_watched = true;
    c->write_timer.expires_at(deadline);
    c->write_timer.async_wait([s, c](std::error_code ec) {
      c->write_watched = false;
      if (ec || !c->open || s->closed || !c->writing) return;
      const auto due = c->write_started + s->opts.write_timeout;
      if (asio::steady_timer::clock_type::now() < due) return watch_write(s, c, due);
      ++s->stats.write_timeouts;
      s->log(log_level::warning, "closing the connection with node ", c->peer, " (", c->remote,
             "): a write of ", c->write_bytes, " bytes did not complete within ", s->opts.write_timeout.count(), " ms");
      c->close();  // the reader sees it and cleans up; the dialler dials again
    });
  }

  /// Encodes `p`'s queue into `c`'s write buffer (at most max_write_batch_bytes, at least one
  /// message), which must hold nothing unwritten.
  static void take_queue(state& s, peer& p, connection& c) {
    auto& out = c.wbuf;
    out.clear();
    c.wdone = 0;
    while (!p.queue.empty() && (out.empty() || out.size() < s.opts.max_write_batch_bytes)) {
      const std::size_t before = out.size();
      codec::encode_frame(p.queue.front(), out);
      recycle(p.queue.front());  // its entry vector serves the next message built here
      p.queued_bytes -= out.size() - before;
      p.queue.pop_front();
      ++s.stats.messages_sent;
    }
  }

  /// Writes `p`'s queue to `c`'s non-blocking socket from here, while the socket takes it; what
  /// it does not take, the writer coroutine writes (woken). `c` must be idle.
  static void write_now(state& s, peer& p, connection& c) {
    while (!p.queue.empty()) {
      take_queue(s, p, c);
      std::error_code ec;
      std::size_t n = 0;
      if constexpr (std::is_same_v<stream_type, tcp::socket>) n = c.stream.write_some(asio::buffer(c.wbuf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec.clear();
      } else if (ec) {
        c.close();  // the reader sees it and cleans up
        return;
      }
      c.wdone = n;
      if (n < c.wbuf.size()) {
        p.wake.notify();
        return;
      }
    }
    written(s, c);
  }

  /// `c`'s write buffer is all written: empty it, and give back a buffer an unusually large batch
  /// grew.
  static void written(const state& s, connection& c) {
    c.wbuf.clear();
    c.wdone = 0;
    if (c.wbuf.capacity() > 2 * s.opts.max_write_batch_bytes + (std::size_t{1} << 20)) c.wbuf.shrink_to_fit();
  }

  /// Writes the peer's queue through `c` until `c` closes or is replaced: what write_now() left,
  /// and whatever queues while a write is in progress.
  static asio::awaitable<void> write_loop(std::shared_ptr<state> s, peer* pp, std::shared_ptr<connection> c) {
    auto& p = *pp;
    std::error_code ec;
    for (;;) {
      if (s->closed || !c->open || p.conn != c) co_return;
      auto& out = c->wbuf;
      if (c->wdone >= out.size()) {  // nothing left unwritten
        if (p.queue.empty()) {
          co_await p.wake.wait();
          continue;
        }
        take_queue(*s, p, *c);
      }
      c->writing = true;
      if (s->opts.write_timeout.count() > 0) {
        c->write_started = asio::steady_timer::clock_type::now();
        c->write_bytes = out.size() - c->wdone;
        if (!c->write_watched) watch_write(s, c, c->write_started + s->opts.write_timeout);
      }
      co_await asio::async_write(c->stream, asio::buffer(out.data() + c->wdone, out.size() - c->wdone),
                                 asio::bind_allocator(detail::op_allocator<void>(c->write_memory),
                                                      asio::redirect_error(asio::use_awaitable, ec)));
      c->writing = false;
      if (ec || !c->open) {
        c->close();  // the reader sees it and cleans up
        co_return;
      }
      written(*s, *c);
    }
  }

  std::shared_ptr<state> s_;
};

/// The TCP transport without connection security (see raft/transport/tls.hpp for mutual TLS).
using tcp_transport = basic_tcp_transport<plain_tcp>;

}  // namespace v1
}  // namespace raft
