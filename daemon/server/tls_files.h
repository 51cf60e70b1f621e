// TlsFiles: the daemon's own TLS certificate, key and (for mutual TLS) client CA, as gRPC
// server credentials that follow a reload.
//
// Open() checks the PEM files (a certificate chain, the key that matches it, a CA bundle)
// and refuses to start on a bad one. gRPC serves them through a file-watching certificate
// provider that looks at in-memory copies (memfd, named /proc/self/fd/N), never at the
// files themselves: Reload() (SIGHUP) checks the files again and swaps the copies in one
// dup2, so gRPC picks up a new certificate within a second, and a broken new file leaves
// the old certificate in service. With a client CA, a client must present a certificate
// it signed (REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
//
// Open/Reload from one control thread.
#ifndef MAILPOOL_SERVER_TLS_FILES_H_
#define MAILPOOL_SERVER_TLS_FILES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ServerCredentials;
}  // namespace grpc

namespace mailpool::server {

class TlsFiles {
 public:
  static absl::StatusOr<std::unique_ptr<TlsFiles>> Open(std::string cert_file,
                                                        std::string key_file,
                                                        std::string client_ca_file);
  ~TlsFiles();

  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }
  absl::Status Reload();

 private:
  struct Contents;
  TlsFiles() = default;
  absl::StatusOr<Contents> Read() const;
  absl::Status Install(const Contents& contents);

  std::string cert_file_, key_file_, client_ca_file_;
  int cert_fd_ = -1, key_fd_ = -1, ca_fd_ = -1;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

}  // namespace mailpool::server

#endif  // MAILPOOL_SERVER_TLS_FILES_H_
