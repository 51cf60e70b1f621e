#include "server/tls_files.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace mailpool::server {

struct TlsFiles::Contents {
  std::string cert, key, ca;
};

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A memfd holding `text`, or -1.
int MemoryFile(const char* name, const std::string& text) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += n;
  }
  return fd;
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

}  // namespace

absl::StatusOr<TlsFiles::Contents> TlsFiles::Read() const {
  Contents c;
  absl::StatusOr<std::string> cert = ReadFile(cert_file_, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(key_file_, "--tls_key");
  if (!key.ok()) return key.status();
  c.cert = *std::move(cert);
  c.key = *std::move(key);
  // The certificate and the key must parse and belong together (checked with OpenSSL, as
  // gRPC would only fail the handshakes later).
  BIO* cert_bio = BIO_new_mem_buf(c.cert.data(), static_cast<int>(c.cert.size()));
  X509* x509 = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  BIO* key_bio = BIO_new_mem_buf(c.key.data(), static_cast<int>(c.key.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  bool matches = x509 != nullptr && pkey != nullptr && X509_check_private_key(x509, pkey) == 1;
  bool cert_ok = x509 != nullptr, key_ok = pkey != nullptr;
  X509_free(x509);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  if (!cert_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_cert: ", cert_file_, " holds no PEM certificate"));
  }
  if (!key_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key: ", key_file_, " holds no PEM private key"));
  }
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat("--tls_key: ", key_file_,
                                                   " is not the key of ", cert_file_));
  }
  if (!client_ca_file_.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(client_ca_file_, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
    c.ca = *std::move(ca);
    BIO* ca_bio = BIO_new_mem_buf(c.ca.data(), static_cast<int>(c.ca.size()));
    X509* first = PEM_read_bio_X509(ca_bio, nullptr, nullptr, nullptr);
    BIO_free(ca_bio);
    bool ca_ok = first != nullptr;
    X509_free(first);
    ERR_clear_error();
    if (!ca_ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls_client_ca: ", client_ca_file_, " holds no PEM certificate"));
    }
  }
  return c;
}

absl::Status TlsFiles::Install(const Contents& c) {
  struct Slot {
    int* fd;
    const char* name;
    const std::string* text;
  } slots[] = {{&cert_fd_, "mailpool-tls-cert", &c.cert},
               {&key_fd_, "mailpool-tls-key", &c.key},
               {&ca_fd_, "mailpool-tls-ca", &c.ca}};
  for (const Slot& slot : slots) {
    if (slot.fd == &ca_fd_ && client_ca_file_.empty()) continue;
    int fresh = MemoryFile(slot.name, *slot.text);
    if (fresh < 0) {
      return absl::InternalError(absl::StrCat("cannot hold the TLS files: ", strerror(errno)));
    }
    if (*slot.fd < 0) {
      *slot.fd = fresh;
    } else {
      // The watcher's path now names the new contents, atomically.
      dup3(fresh, *slot.fd, O_CLOEXEC);
      close(fresh);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsFiles>> TlsFiles::Open(std::string cert_file,
                                                         std::string key_file,
                                                         std::string client_ca_file) {
  std::unique_ptr<TlsFiles> files(new TlsFiles());
  files->cert_file_ = std::move(cert_file);
  files->key_file_ = std::move(key_file);
  files->client_ca_file_ = std::move(client_ca_file);
  absl::StatusOr<Contents> contents = files->Read();
  if (!contents.ok()) return contents.status();
  if (absl::Status s = files->Install(*contents); !s.ok()) return s;

  bool mutual = !files->client_ca_file_.empty();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      FdPath(files->key_fd_), FdPath(files->cert_fd_), mutual ? FdPath(files->ca_fd_) : "",
      /*refresh_interval_sec=*/1);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  files->credentials_ = grpc::experimental::TlsServerCredentials(options);
  if (files->credentials_ == nullptr) {
    return absl::InternalError("gRPC refused the TLS credentials");
  }
  return files;
}

absl::Status TlsFiles::Reload() {
  absl::StatusOr<Contents> contents = Read();
  if (!contents.ok()) return contents.status();
  return Install(*contents);
}

TlsFiles::~TlsFiles() {
  for (int fd : {cert_fd_, key_fd_, ca_fd_}) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace mailpool::server
