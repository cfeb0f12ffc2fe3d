// benchmarks/compile_time/echo_server.cpp - the yardstick of benchmarks/compile_time.sh: a minimal
// TCP echo server written with C++20 coroutines on standalone Asio, the smallest useful program
// of the kind raft is built from. Written for this comparison (not taken from Asio's examples).
//
//   echo_server [PORT]      listens on 127.0.0.1:PORT (default 0: any free port), echoes every
//                           byte back to its sender; Ctrl-C or SIGTERM stops it.
#include <array>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <system_error>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace {

using asio::ip::tcp;

// One connection: read whatever arrived, write it back, until the peer closes.
asio::awaitable<void> echo(tcp::socket peer) {
  std::array<std::byte, 4096> chunk;
  for (;;) {
    std::size_t got = 0;
    try {
      got = co_await peer.async_read_some(asio::buffer(chunk), asio::use_awaitable);
      co_await asio::async_write(peer, asio::buffer(chunk.data(), got), asio::use_awaitable);
    } catch (const std::system_error&) {
      co_return;  // closed or reset: this connection is done
    }
  }
}

// Accepts connections forever, one coroutine each.
asio::awaitable<void> serve(tcp::acceptor& listener) {
  for (;;) {
    tcp::socket peer = co_await listener.async_accept(asio::use_awaitable);
    asio::co_spawn(listener.get_executor(), echo(std::move(peer)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  asio::io_context io(1);
  tcp::acceptor listener(io, tcp::endpoint(asio::ip::address_v4::loopback(), port));
  std::printf("echoing on port %u\n", static_cast<unsigned>(listener.local_endpoint().port()));
  std::fflush(stdout);

  asio::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&](std::error_code, int) { io.stop(); });

  asio::co_spawn(io, serve(listener), [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "echo_server: accept loop failed\n");
  });
  io.run();
}
