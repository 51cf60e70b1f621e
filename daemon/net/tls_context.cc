#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace mailpool::net {
namespace {

absl::StatusOr<SslCtxPtr> NewContext(const std::string& ca_pem, bool verify) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Idle connections keep no read/write record buffers (DESIGN.md: memory per session).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // Sessions are never resumed: do not ask for (TLS 1.2) session tickets.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (!verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return absl::InternalError("cannot load the system CA store");
  }
  if (!ca_pem.empty()) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())), BIO_free);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    int added = 0;
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
      ++added;
    }
    ERR_clear_error();
    if (added == 0) {
      return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                         "tls.ca_pem holds no PEM certificate");
    }
  }
  return ctx;
}

}  // namespace

absl::StatusOr<SslCtxPtr> ClientContext(const std::string& ca_pem, bool verify) {
  static std::mutex mu;
  static auto* cache = new std::map<std::pair<std::string, bool>, SslCtxPtr>();
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(verify ? ca_pem : std::string(), verify);
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  MP_ASSIGN_OR_RETURN(SslCtxPtr ctx, NewContext(key.first, verify));
  // Bound the cache: custom CAs are rare, but a caller could send many distinct ones.
  if (cache->size() > 64) cache->clear();
  (*cache)[key] = ctx;
  return ctx;
}

}  // namespace mailpool::net
