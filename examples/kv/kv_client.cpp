// examples/kv/kv_client.cpp - a command-line client for kv_server.
//
//   kv_client --servers 1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003 [--timeout SECONDS]
//             put KEY VALUE | get KEY | del KEY | append KEY VALUE
//             add ID HOST:PORT | promote ID | remove ID | transfer ID
//   kv_client --servers ... --node N  status | localget KEY
//   [--tls-cert FILE --tls-key FILE --tls-ca FILE]   when the servers run with --tls-*
//
// put/get/del/append go to the leader: the client starts with the first server, follows
// `ERR not_leader N` to N's client address, tries the next server when the leader is unknown or
// a server cannot be reached, and keeps trying with a short backoff until the deadline
// (--timeout, default 10 s). On success it prints the value of the reply (put/del: the previous
// value; get: the value; append: the new value), or nothing when there is none (put of a new
// key), and exits 0. A key that has no value (the server's NOTFOUND to get, localget or del) prints
// nothing on stdout and exits 4. Values are never empty: put and append refuse an empty one.
//
// A write is sent again only when it certainly was not applied (connection refused, or
// `ERR not_leader` / `ERR busy`, which the server answers before appending anything). If the
// outcome is unknown - the connection broke after the command was sent, or the server answered
// `ERR leadership_lost` / `ERR stopped` - a write is NOT retried (an append applied twice would
// be wrong): the client says so and exits 3. get is a read and is retried in every case.
//
// status and localget ask one server (--node N, or the first one) about itself: no redirects.
//
// With --tls-*, every connection is TLS: the client presents its certificate (signed by the CA of
// --tls-ca) and checks that server N's certificate is signed by that CA and names
// "raft-node-N". A server that refuses the client's certificate has not read the command: that
// counts as "not applied", not as "outcome unknown".
//
// Exit status: 0 success; 1 failed (not applied: deadline passed, or the server refused the
// command); 2 usage; 3 outcome unknown; 4 not found (the key has no value).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#if RAFT_KV_TLS
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <raft/transport/tls.hpp>
#endif

#include "address_list.hpp"
#include "command_line.hpp"

namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

enum exit_status { ok = 0, failed = 1, bad_usage = ::kv::usage_exit_status, unknown_outcome = 3, not_found = 4 };

#if RAFT_KV_TLS
constexpr bool built_with_tls = true;
#else
constexpr bool built_with_tls = false;
#endif

using server_address = ::kv::listed_address;

struct request {
  std::map<std::uint64_t, server_address> servers;
  std::optional<std::uint64_t> only;  // --node
  std::chrono::milliseconds timeout = 10s;
  std::string verb;                   // lower case
  std::string line;                   // what is sent, without the newline
  bool idempotent = false;            // may be re-sent after an unknown outcome
  bool redirect = true;               // follows not_leader
  ::kv::tls_files tls;                // all three, or none (no TLS)
};

const char* const usage_text =
    "usage: kv_client --servers 1=HOST:PORT,2=HOST:PORT,... [--timeout SECONDS]\n"
    "                 put KEY VALUE | get KEY | del KEY | append KEY VALUE\n"
    "                 add ID HOST:PORT | promote ID | remove ID | transfer ID\n"
    "       kv_client --servers ... [--node N] status | localget KEY\n"
    "       [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n";

request parse_args(int argc, char** argv) {
  request r;
  ::kv::command_line args(argc, argv, "kv_client", usage_text);
  std::vector<std::string_view> words;
  while (args.next()) {
    const std::string_view arg = args.current();
    if (arg == "--servers") {
      try {
        r.servers = ::kv::parse_address_list(args.value());
      } catch (const std::invalid_argument& e) {
        args.fail(std::string("--servers: ") + e.what());
      }
    } else if (arg == "--node") {
      r.only = args.number_value(UINT64_MAX, 10);
    } else if (arg == "--timeout") {
      r.timeout = std::chrono::milliseconds(args.number_value(UINT64_MAX, 10) * 1000);
    } else if (r.tls.read_option(args)) {
      continue;
    } else if (arg.starts_with("--")) {
      args.fail("unknown option '" + std::string(arg) + "'");
    } else {
      words.push_back(arg);
    }
  }
  if (r.servers.empty()) args.fail("--servers is required");
  r.tls.check(args, built_with_tls);
  if (r.only && !r.servers.contains(*r.only)) args.fail("--node must be one of --servers");
  if (words.empty()) args.fail("no command");
  for (char c : words[0]) r.verb += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  const std::size_t want = r.verb == "put" || r.verb == "append" || r.verb == "add" ? 3
                           : r.verb == "status"                                     ? 1
                                                                                    : 2;
  if (r.verb != "put" && r.verb != "append" && r.verb != "get" && r.verb != "del" &&
      r.verb != "status" && r.verb != "localget" && r.verb != "add" && r.verb != "promote" &&
      r.verb != "remove" && r.verb != "transfer")
    args.fail("unknown command '" + std::string(words[0]) + "'");
  if (words.size() != want) args.fail("wrong number of arguments for " + r.verb);
  for (std::size_t i = 1; i < words.size(); ++i)
    if (words[i].find('\n') != std::string_view::npos || words[i].find('\r') != std::string_view::npos ||
        (i == 1 && (words[i].empty() || words[i].find(' ') != std::string_view::npos)))
      args.fail("keys must be non-empty without spaces; keys and values must not contain newlines");
  if ((r.verb == "put" || r.verb == "append") && words[2].empty())
    args.fail("values must not be empty (del removes a key)");
  for (char c : r.verb) r.line += static_cast<char>(c - 'a' + 'A');
  for (std::size_t i = 1; i < words.size(); ++i) (r.line += ' ') += words[i];
  r.idempotent = r.verb == "get" || r.verb == "status" || r.verb == "localget";
  r.redirect = r.verb != "status" && r.verb != "localget";
  return r;
}

/// One exchange with one server: connect, send `line`, read one reply line. Each step is bounded
/// by `limit`: a timer closes the socket when it expires.
struct exchange_result {
  bool connected = false;  // false: the command was certainly not delivered
  bool sent = false;
  std::optional<std::string> reply;
  std::string failure;
};

/// Sends `line` and reads one reply line over `stream` (a TCP socket or a TLS stream over one).
template <class Stream>
asio::awaitable<void> talk(Stream& stream, const std::string& line, const bool& expired, exchange_result& out) {
  std::error_code ec;
  const std::string wire = line + '\n';
  co_await asio::async_write(stream, asio::buffer(wire), asio::redirect_error(asio::use_awaitable, ec));
  out.sent = true;  // possibly partly: from here on the server may have received it
  std::string in;
  std::size_t n = 0;
  if (!ec)
    n = co_await asio::async_read_until(stream, asio::dynamic_buffer(in), '\n',
                                        asio::redirect_error(asio::use_awaitable, ec));
  if (ec || expired) {
    out.failure = expired ? "timed out waiting for the reply" : ec.message();
#if RAFT_KV_TLS
    // A TLS alert from the server right after the handshake: with TLS 1.3 the server checks the
    // client's certificate after the client has finished its part of the handshake, so its
    // refusal arrives here. It refused before reading anything: the command was not delivered.
    if (!expired && ec.category() == asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) >= SSL_AD_REASON_OFFSET) {
      out.sent = false;
      out.failure = "the server refused the TLS connection: " + ec.message();
    }
#endif
    co_return;
  }
  std::string reply = in.substr(0, n - 1);
  if (!reply.empty() && reply.back() == '\r') reply.pop_back();
  out.reply = std::move(reply);
}

/// The TLS context of --tls-*, or null without TLS.
#if RAFT_KV_TLS
using tls_context = std::shared_ptr<asio::ssl::context>;
#else
using tls_context = std::shared_ptr<void>;
#endif

asio::awaitable<exchange_result> exchange(std::uint64_t id, const server_address& to, const std::string& line,
                                          clock_type::time_point limit, const tls_context& tls) {
  auto ex = co_await asio::this_coro::executor;
  exchange_result out;
  // Shared with the guard's handler, which may run after this coroutine has returned.
  struct connection {
    explicit connection(const asio::any_io_executor& e) : socket(e) {}
    tcp::socket socket;
    bool expired = false;
  };
  auto conn = std::make_shared<connection>(ex);
  tcp::socket& socket = conn->socket;
  const bool& expired = conn->expired;
  asio::steady_timer guard(ex, limit);
  guard.async_wait([conn](std::error_code ec) {
    if (ec) return;
    conn->expired = true;
    std::error_code ignored;
    conn->socket.close(ignored);
  });

  std::error_code ec;
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(to.host, to.port, asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) co_await asio::async_connect(socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || expired) {
    out.failure = expired ? "timed out connecting" : ec.message();
    guard.cancel();
    co_return out;
  }
#if RAFT_KV_TLS
  if (tls) {
    // A TLS stream over the socket (by reference: the guard closes the socket underneath).
    asio::ssl::stream<tcp::socket&> stream(socket, *tls);
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    std::string refused;
    if (ec || expired)
      refused = expired ? "timed out in the TLS handshake" : "TLS handshake failed: " + ec.message();
    else
      refused = raft::tls_check_peer_name(stream.native_handle(), raft::tls_node_name(raft::node_id{id}));
    if (!refused.empty()) {
      out.failure = refused;
      guard.cancel();
      co_return out;
    }
    out.connected = true;
    co_await talk(stream, line, expired, out);
    guard.cancel();
    co_return out;
  }
#else
  (void)id;
  (void)tls;
#endif
  out.connected = true;
  co_await talk(socket, line, expired, out);
  guard.cancel();
  co_return out;
}

asio::awaitable<void> sleep_for(clock_type::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  std::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

std::string name(std::uint64_t id, const server_address& a) {
  return std::to_string(id) + " (" + a.host + ":" + a.port + ")";
}

asio::awaitable<int> run(const request& r) {
  tls_context tls;
#if RAFT_KV_TLS
  if (r.tls.given()) {
    raft::tls_options o;
    o.cert_file = r.tls.cert;
    o.key_file = r.tls.key;
    o.ca_file = r.tls.ca;
    tls = raft::make_tls_context(o);  // throws, naming the file it cannot use
  }
#endif
  const auto deadline = clock_type::now() + r.timeout;
  auto target = r.servers.find(r.only.value_or(r.servers.begin()->first));
  auto next_server = [&] {
    if (++target == r.servers.end()) target = r.servers.begin();
  };
  auto backoff = std::chrono::milliseconds(50);
  std::string last_problem = "no server answered";

  for (;;) {
    const auto now = clock_type::now();
    if (now >= deadline) {
      std::fprintf(stderr, "kv_client: gave up after %lld s: %s\n",
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(r.timeout).count()),
                   last_problem.c_str());
      co_return failed;
    }
    auto pause = [&]() -> asio::awaitable<void> {
      co_await sleep_for(std::min<clock_type::duration>(backoff, deadline - clock_type::now()));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    };
    // Each attempt may take at most 5 s (an election takes well under a second), and no longer
    // than the overall deadline.
    const auto limit = std::min(deadline, now + 5s);
    const exchange_result x = co_await exchange(target->first, target->second, r.line, limit, tls);

    if (!x.reply) {
      last_problem = "server " + name(target->first, target->second) + ": " + x.failure;
      if (x.sent && !r.idempotent) {
        std::fprintf(stderr, "kv_client: outcome unknown: %s after the command was sent\n",
                     last_problem.c_str());
        co_return unknown_outcome;
      }
      if (!r.redirect) {
        if (clock_type::now() < deadline) co_await pause();
        continue;
      }
      next_server();
      co_await pause();
      continue;
    }

    const std::string& reply = *x.reply;
    if (reply == "OK") co_return ok;  // done, and no value to show (put of a new key)
    if (reply.starts_with("OK ")) {
      std::printf("%s\n", reply.substr(3).c_str());
      co_return ok;
    }
    if (reply == "NOTFOUND") {
      std::fprintf(stderr, "kv_client: not found: the key has no value\n");
      co_return not_found;
    }
    last_problem = "server " + name(target->first, target->second) + ": " + reply;
    if (reply.starts_with("ERR not_leader") && r.redirect) {
      const std::string hint = reply.size() > 15 ? reply.substr(15) : "0";
      char* end = nullptr;
      const unsigned long long leader = std::strtoull(hint.c_str(), &end, 10);
      auto hinted = r.servers.find(leader);
      if (leader != 0 && hinted != r.servers.end() && hinted != target) {
        target = hinted;  // straight there, no pause: it names the current leader
      } else {
        next_server();  // no leader known (an election is under way), or a stale self-hint
        co_await pause();
      }
      continue;
    }
    if (reply.starts_with("ERR busy")) {
      co_await pause();
      continue;
    }
    if (reply.starts_with("ERR leadership_lost") || reply.starts_with("ERR stopped") ||
        reply.starts_with("ERR timeout")) {
      if (r.idempotent) {
        next_server();
        co_await pause();
        continue;
      }
      std::fprintf(stderr, "kv_client: outcome unknown: %s\n", last_problem.c_str());
      co_return unknown_outcome;
    }
    std::fprintf(stderr, "kv_client: %s\n", last_problem.c_str());
    co_return failed;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const request r = parse_args(argc, argv);
  int status = failed;
  try {
    asio::io_context io;
    asio::co_spawn(io, run(r), [&](std::exception_ptr e, int s) {
      if (e) std::rethrow_exception(e);
      status = s;
    });
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kv_client: %s\n", e.what());
    return failed;
  }
  return status;
}
