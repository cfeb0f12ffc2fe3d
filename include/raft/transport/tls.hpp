// raft/transport/tls.hpp - mutual TLS for the TCP transport: raft::mutual_tls, raft::tls_transport.
//
// Opt-in: only this header needs OpenSSL (asio::ssl; link with libssl and libcrypto, e.g.
// meson `dependency('openssl')`, Debian libssl-dev). raft/transport/tcp.hpp does not include it.
//
//   raft::tls_options tls;
//   tls.ca_file = "ca.pem";             // the CA that signs every member's certificate
//   tls.cert_file = "node1.pem";        // this node's certificate, naming "raft-node-1"
//   tls.key_file = "node1.key";
//   raft::tls_transport net(ex, raft::node_id{1}, listen, peers, topts, raft::mutual_tls(tls));
//
// tls_transport is basic_tcp_transport<mutual_tls>: the same framing, handshake, queues and
// reconnects as tcp_transport, over asio::ssl::stream. Every connection, in both directions:
//   1. a TLS handshake (TLS 1.2 or later) in which both ends present a certificate, and each
//      checks the other's chain against the configured CA: no certificate, an unsigned one, one
//      from another CA or an expired one fails here;
//   2. the other end's certificate must name the node it stands for: the dialler checks the
//      acceptor's certificate against the id it dialled before sending anything, the acceptor
//      checks the dialler's certificate against the id its Raft handshake claims. "Names" means
//      a DNS subjectAltName equal to tls_options::node_name(id) (default "raft-node-<id>"), or,
//      when the certificate has no DNS name at all, a subject CN equal to it (no wildcards,
//      ASCII case-insensitive: OpenSSL's X509_check_host).
// Any failure is counted (stats().handshake_failures), logged as a warning with the reason, and
// closes the connection. See docs/transport.md, "TLS".
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/ssl/verify_mode.hpp>
#include <asio/use_awaitable.hpp>

#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raft/detail/asio_check.hpp"
#include "raft/transport/tcp.hpp"

namespace raft {
inline namespace v1 {

/// The name a node's certificate must carry by default: "raft-node-<id>".
[[nodiscard]] inline std::string tls_node_name(node_id id) { return "raft-node-" + std::to_string(id.value); }

struct tls_options {
  /// PEM file with the CA certificate(s) that sign the members' certificates. Only these are
  /// trusted (not the system's store).
  std::string ca_file;
  /// PEM file with this node's certificate (then any intermediate CA certificates).
  std::string cert_file;
  /// PEM file with the certificate's private key (not encrypted).
  std::string key_file;
  /// The name node `id`'s certificate must carry; empty: tls_node_name ("raft-node-<id>").
  std::function<std::string(node_id)> node_name;
  /// The oldest protocol version accepted (OpenSSL's TLS1_2_VERSION or TLS1_3_VERSION).
  int min_protocol_version = TLS1_2_VERSION;
};

/// The names a certificate carries, for messages: "DNS:a, DNS:b, CN=c" (bytes outside printable
/// ASCII shown as '?'), or "no name".
[[nodiscard]] inline std::string tls_certificate_names(X509* cert) {
  std::string out;
  auto add = [&out](std::string_view kind, const unsigned char* data, int length) {
    if (!out.empty()) out += ", ";
    out += kind;
    for (int i = 0; i < length; ++i) out += data[i] >= 0x20 && data[i] < 0x7F ? static_cast<char>(data[i]) : '?';
  };
  if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) add("DNS:", ASN1_STRING_get0_data(gn->d.dNSName), ASN1_STRING_length(gn->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    add("CN=", ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn));
  }
  return out.empty() ? std::string("no name") : out;
}

/// Checks the certificate the other end of `ssl` presented, after a completed handshake: it
/// verified against the trusted CA, and it names `name` (a DNS subjectAltName, or the CN when
/// there is no DNS name; see the top of this file). Returns why not, or "".
[[nodiscard]] inline std::string tls_check_peer_name(SSL* ssl, std::string_view name) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509* raw = SSL_get1_peer_certificate(ssl);
#else
  X509* raw = SSL_get_peer_certificate(ssl);
#endif
  if (!raw) return "no certificate presented";
  const std::unique_ptr<X509, decltype(&X509_free)> cert(raw, &X509_free);
  if (const long v = SSL_get_verify_result(ssl); v != X509_V_OK)
    return std::string("certificate not verified: ") + X509_verify_cert_error_string(v);
  if (X509_check_host(cert.get(), name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1) return {};
  return "certificate names " + tls_certificate_names(cert.get()) + ", not " + std::string(name);
}

/// A TLS context for mutual TLS: trusts only `o.ca_file`, presents `o.cert_file` with
/// `o.key_file`, requires a certificate from the other end, TLS `o.min_protocol_version` or
/// later, no compression, no renegotiation, no session tickets. Throws std::runtime_error naming the file that
/// could not be used.
[[nodiscard]] inline std::shared_ptr<asio::ssl::context> make_tls_context(const tls_options& o) {
  auto fail = [](const std::string& what, const std::string& file, const std::string& why) {
    throw std::runtime_error("tls: " + what + " '" + file + "': " + why);
  };
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty())
    throw std::runtime_error("tls: ca_file, cert_file and key_file are all required");
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, o.min_protocol_version) != 1)
    throw std::runtime_error("tls: unsupported min_protocol_version " + std::to_string(o.min_protocol_version));
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  SSL_CTX_set_num_tickets(native, 0);  // nobody resumes: save the round of tickets
#ifdef SSL_OP_NO_RENEGOTIATION
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);  // TLS 1.2: one certificate per connection
#endif
  std::error_code ec;
  ctx->load_verify_file(o.ca_file, ec);
  if (ec) fail("cannot load the CA certificate file", o.ca_file, ec.message());
  ctx->use_certificate_chain_file(o.cert_file, ec);
  if (ec) fail("cannot load the certificate file", o.cert_file, ec.message());
  ctx->use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
  if (ec) fail("cannot load the private key file", o.key_file, ec.message());
  if (SSL_CTX_check_private_key(native) != 1)
    fail("the private key does not match the certificate in", o.cert_file, o.key_file);
  ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

/// Connection security for basic_tcp_transport: mutual TLS with the node id checked against the
/// certificate (see the top of this file). Models tcp_connection_security.
class mutual_tls {
 public:
  using stream_type = asio::ssl::stream<asio::ip::tcp::socket>;

  /// Loads the files (throws std::runtime_error if one cannot be used: see make_tls_context).
  explicit mutual_tls(const tls_options& o) : ctx_(make_tls_context(o)), names_(o.node_name) {}
  /// Uses a context set up by the caller (its CA, certificate and key). Every connection still
  /// requires and verifies the other end's certificate, and checks its name with `names`
  /// (empty: tls_node_name).
  explicit mutual_tls(std::shared_ptr<asio::ssl::context> ctx, std::function<std::string(node_id)> names = {})
      : ctx_(std::move(ctx)), names_(std::move(names)) {
    if (!ctx_) throw std::invalid_argument("mutual_tls: no TLS context");
  }

  [[nodiscard]] stream_type make_stream(const asio::any_io_executor& ex) const { return stream_type(ex, *ctx_); }

  /// The TLS handshake: the dialler is the TLS client. Returns why it failed, or "".
  asio::awaitable<std::string> secure(stream_type& stream, bool we_dialled) const {
    std::error_code ec;
    stream.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    if (!ec)
      co_await stream.async_handshake(we_dialled ? stream_type::client : stream_type::server,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_return std::string();
    std::string why = "TLS handshake failed: " + ec.message();
    if (const long v = SSL_get_verify_result(stream.native_handle()); v != X509_V_OK)
      why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
    co_return why;
  }

  /// Whether the other end's certificate names node `id`.
  [[nodiscard]] std::string check_peer(stream_type& stream, node_id id) const {
    return tls_check_peer_name(stream.native_handle(), name_of(id));
  }

  /// The name node `id`'s certificate must carry.
  [[nodiscard]] std::string name_of(node_id id) const { return names_ ? names_(id) : tls_node_name(id); }

  /// The TLS context (shared by every connection), e.g. for other TLS sockets of the process.
  [[nodiscard]] const std::shared_ptr<asio::ssl::context>& context() const noexcept { return ctx_; }

 private:
  std::shared_ptr<asio::ssl::context> ctx_;
  std::function<std::string(node_id)> names_;
};

static_assert(tcp_connection_security<mutual_tls>);

/// The TCP transport with mutual TLS: construct with a mutual_tls as the last argument.
using tls_transport = basic_tcp_transport<mutual_tls>;

}  // namespace v1
}  // namespace raft
