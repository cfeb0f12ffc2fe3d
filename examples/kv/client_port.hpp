// examples/kv/client_port.hpp - the client side of a server process (kv_server,
// sharded_kv_server): the port clients connect to (--client-host:--client-port), the
// connections it accepted, and the line exchange on each: one request line in, one reply out.
#pragma once

#include <cstddef>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <raft/transport/tcp.hpp>

#include "network.hpp"
#include "server_log.hpp"

namespace kv {

/// The longest request line; a longer one is answered "ERR line too long" and ends the connection.
constexpr std::size_t max_line_bytes = std::size_t{1} << 20;

class client_port {
 public:
  using socket = asio::ip::tcp::socket;
  /// Serves one accepted connection until it ends.
  using connection_handler = std::function<asio::awaitable<void>(socket)>;

  /// Listens on `at` at once: a taken port throws here, naming the port (listen_on).
  client_port(asio::io_context& io, const raft::tcp_address& at, const server_log& log)
      : io_(io),
        log_(log),
        acceptor_(listen_on("client port", "--client-port", at,
                            [&] { return asio::ip::tcp::acceptor(io, resolve(io, at)); })) {}

  [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  /// Accepts connections until stop_accepting(), each served by its own `serve` coroutine.
  void start(connection_handler serve) { asio::co_spawn(io_, accept_loop(std::move(serve)), asio::detached); }

  void stop_accepting() {
    accepting_ = false;
    std::error_code ignored;
    acceptor_.close(ignored);
  }

  /// Closes every connection still open: their sessions end at their next read or write.
  void close_connections() {
    std::error_code ignored;
    for (socket* s : open_) s->close(ignored);
  }

  /// Keeps a connection's socket in the set that close_connections() closes, while it lives.
  class tracked {
   public:
    tracked(client_port& port, socket& s) : port_(port), s_(&s) { port_.open_.insert(s_); }
    ~tracked() { port_.open_.erase(s_); }
    tracked(const tracked&) = delete;
    tracked& operator=(const tracked&) = delete;

   private:
    client_port& port_;
    socket* s_;
  };

 private:
  asio::awaitable<void> accept_loop(connection_handler serve) {
    for (;;) {
      std::error_code ec;
      socket s = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!accepting_) co_return;
        log_.info("accept failed: ", ec.message());
        continue;
      }
      asio::co_spawn(io_, serve(std::move(s)), asio::detached);
    }
  }

  asio::io_context& io_;
  const server_log& log_;
  asio::ip::tcp::acceptor acceptor_;
  std::set<socket*> open_;  // the sockets of the open connections
  bool accepting_ = true;
};

/// Reads a line, answers `co_await answer(line)` and a newline, until the client closes (or
/// close_connections() does). `stream` is the socket `raw` itself, or a TLS stream over it.
template <class Stream, class Answer>
asio::awaitable<void> exchange_lines(Stream& stream, asio::ip::tcp::socket& raw, Answer answer) {
  std::string in;
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await asio::async_read_until(stream, asio::dynamic_buffer(in, max_line_bytes), '\n',
                                                          asio::redirect_error(asio::use_awaitable, ec));
    const bool too_long = ec == asio::error::not_found;
    if (ec && !too_long) co_return;  // closed by the client, or by our shutdown
    std::string reply = "ERR line too long";
    if (!too_long) {
      std::string line = in.substr(0, n - 1);
      in.erase(0, n);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      reply = co_await answer(std::string_view(line));
    }
    reply += '\n';
    if (!raw.is_open()) co_return;
    co_await asio::async_write(stream, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || too_long) co_return;
  }
}

}  // namespace kv
