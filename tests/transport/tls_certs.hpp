// tests/transport/tls_certs.hpp - certificates made at test time, with the OpenSSL C API, into a
// temporary directory that is removed afterwards. No key or certificate is committed; nothing
// outside the process (no openssl command) is needed.
//
//   test_pki pki;
//   auto ca = pki.make_ca("raft test CA");
//   auto n1 = pki.issue(ca, "node1", {.cn = "raft-node-1", .dns = {"raft-node-1"}});
//   raft::tls_options o = pki.options(ca, n1);
//
// Keys are ECDSA P-256; certificates are valid from an hour ago for a day, signed with SHA-256.
// A CA certificate has basicConstraints CA:TRUE and keyUsage keyCertSign; a node certificate
// has CA:FALSE, keyUsage digitalSignature, by default extendedKeyUsage serverAuth + clientAuth
// (it is used in both roles: a node dials some peers and accepts others).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <sys/stat.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raft/transport/tls.hpp"

namespace tcp_test {

class test_pki {
 public:
  using key_ptr = std::shared_ptr<EVP_PKEY>;
  using cert_ptr = std::shared_ptr<X509>;

  struct authority {
    std::string cert_file;  // PEM
    cert_ptr cert;
    key_ptr key;
  };
  struct identity {
    std::string cert_file;  // PEM
    std::string key_file;   // PEM, unencrypted, mode 0600
  };
  struct names {
    std::string cn;                // subject common name (none if empty)
    std::vector<std::string> dns;  // subjectAltName DNS entries (no extension if empty)
    std::string eku = "serverAuth,clientAuth";  // extendedKeyUsage (no extension if empty)
  };

  test_pki() {
    std::string pattern = (std::filesystem::temp_directory_path() / "raft-tls-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir_ = pattern;
  }
  ~test_pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

  /// A self-signed CA named `cn`.
  authority make_ca(const std::string& cn) {
    authority ca;
    ca.key = new_key();
    ca.cert = build(*ca.key, {cn, {}}, nullptr, nullptr, true);
    ca.cert_file = write_cert(*ca.cert, "ca" + std::to_string(++serial_));
    return ca;
  }

  /// A node certificate for `n`, signed by `ca`, written to <stem>.pem and <stem>.key.
  identity issue(const authority& ca, const std::string& stem, const names& n) {
    key_ptr key = new_key();
    cert_ptr cert = build(*key, n, ca.cert.get(), ca.key.get(), false);
    identity id;
    id.cert_file = write_cert(*cert, stem);
    id.key_file = write_key(*key, stem);
    return id;
  }

  /// A self-signed (leaf) certificate for `n`: signed by its own key, by no CA.
  identity self_signed(const std::string& stem, const names& n) {
    key_ptr key = new_key();
    cert_ptr cert = build(*key, n, nullptr, nullptr, false);
    identity id;
    id.cert_file = write_cert(*cert, stem);
    id.key_file = write_key(*key, stem);
    return id;
  }

  /// The usual node certificate: CN and one DNS name, both "raft-node-<id>".
  identity issue_node(const authority& ca, std::uint64_t id, const std::string& stem_prefix = "node") {
    const std::string name = "raft-node-" + std::to_string(id);
    return issue(ca, stem_prefix + std::to_string(id) + "-" + std::to_string(++serial_), {name, {name}});
  }

  /// tls_options trusting `ca`, presenting `id`.
  static raft::tls_options options(const authority& ca, const identity& id) {
    raft::tls_options o;
    o.ca_file = ca.cert_file;
    o.cert_file = id.cert_file;
    o.key_file = id.key_file;
    return o;
  }

 private:
  static void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test_pki: ") + what + " failed");
  }

  static key_ptr new_key() {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr),
                                                                    &EVP_PKEY_CTX_free);
    check(ctx != nullptr, "EVP_PKEY_CTX_new_id");
    check(EVP_PKEY_keygen_init(ctx.get()) == 1, "EVP_PKEY_keygen_init");
    check(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) == 1, "set curve");
    check(EVP_PKEY_CTX_set_ec_param_enc(ctx.get(), OPENSSL_EC_NAMED_CURVE) == 1, "set named curve");
    EVP_PKEY* key = nullptr;
    check(EVP_PKEY_keygen(ctx.get(), &key) == 1, "EVP_PKEY_keygen");
    return key_ptr(key, &EVP_PKEY_free);
  }

  cert_ptr build(EVP_PKEY& key, const names& n, X509* issuer, EVP_PKEY* issuer_key, bool ca) {
    cert_ptr x(X509_new(), &X509_free);
    check(x != nullptr, "X509_new");
    check(X509_set_version(x.get(), 2) == 1, "X509_set_version");  // v3
    check(ASN1_INTEGER_set(X509_get_serialNumber(x.get()), ++serial_) == 1, "serial");
    check(X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400) != nullptr, "notAfter");
    check(X509_set_pubkey(x.get(), &key) == 1, "X509_set_pubkey");
    X509_NAME* subject = X509_get_subject_name(x.get());
    if (!n.cn.empty())
      check(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(n.cn.c_str()), -1, -1, 0) == 1,
            "subject CN");
    check(X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("raft tests"), -1, -1, 0) == 1,
          "subject O");
    check(X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : subject) == 1, "issuer");

    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
      check(e != nullptr, "X509V3_EXT_conf_nid");
      const int ok = X509_add_ext(x.get(), e, -1);
      X509_EXTENSION_free(e);
      check(ok == 1, "X509_add_ext");
    };
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add(NID_subject_key_identifier, "hash");
    if (!ca && !n.eku.empty()) add(NID_ext_key_usage, n.eku);
    if (!n.dns.empty()) {
      std::string san;
      for (auto& d : n.dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
      add(NID_subject_alt_name, san);
    }
    check(X509_sign(x.get(), issuer_key ? issuer_key : &key, EVP_sha256()) > 0, "X509_sign");
    return x;
  }

  std::string write_cert(X509& cert, const std::string& stem) {
    const std::string path = (dir_ / (stem + ".pem")).string();
    std::FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr, "fopen");
    const bool ok = PEM_write_X509(f, &cert) == 1;
    check(std::fclose(f) == 0 && ok, "PEM_write_X509");
    return path;
  }

  std::string write_key(EVP_PKEY& key, const std::string& stem) {
    const std::string path = (dir_ / (stem + ".key")).string();
    std::FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr, "fopen");
    ::chmod(path.c_str(), 0600);
    const bool ok = PEM_write_PrivateKey(f, &key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    check(std::fclose(f) == 0 && ok, "PEM_write_PrivateKey");
    return path;
  }

  std::filesystem::path dir_;
  long serial_ = 0;
};

}  // namespace tcp_test
