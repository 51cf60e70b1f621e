// Private to net/: shared OpenSSL client contexts, one per distinct trust configuration.
#ifndef MAILPOOL_NET_TLS_CONTEXT_H_
#define MAILPOOL_NET_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace mailpool::net {

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// The client context for `ca_pem` (empty: system store only) and `verify`. Contexts are
// cached by (ca_pem, verify). Thread-safe. INVALID_ARGUMENT for an unusable PEM.
absl::StatusOr<SslCtxPtr> ClientContext(const std::string& ca_pem, bool verify);

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_TLS_CONTEXT_H_
