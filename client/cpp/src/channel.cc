// mailpool C++ client: the channel to mailpoold (TLS, client certificates, Unix sockets) and
// the caller token sent on every call. See ConnectOptions in include/mailpool/client.h.
#include <grpcpp/support/client_interceptor.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "mailpool/client.h"

namespace mailpool {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": cannot read (", std::strerror(errno), ")"));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Adds `authorization: Bearer <token>` to the initial metadata of every call on the channel.
// The token lives only here and in the metadata sent; it is never part of a message.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(std::shared_ptr<const std::string> header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kAuthorizationHeader, *header_});
    }
    methods->Proceed();
  }

 private:
  std::shared_ptr<const std::string> header_;
};

class TokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::shared_ptr<const std::string> header) : header_(header) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(header_);
  }

 private:
  std::shared_ptr<const std::string> header_;
};

}  // namespace

absl::StatusOr<std::string> ResolveToken(const ConnectOptions& options) {
  std::string token = options.token;
  std::string source = "token";
  std::string file = options.token_file;
  if (token.empty() && file.empty() && options.token_from_environment) {
    const char* env_token = std::getenv("MAILPOOL_TOKEN");
    const char* env_file = std::getenv("MAILPOOL_TOKEN_FILE");
    if (env_token != nullptr && *env_token != '\0') {
      token = env_token;
      source = "$MAILPOOL_TOKEN";
    } else if (env_file != nullptr && *env_file != '\0') {
      file = env_file;
    }
  }
  if (token.empty() && !file.empty()) {
    absl::StatusOr<std::string> content = ReadWholeFile(file, "token file");
    if (!content.ok()) return content.status();
    token = std::string(absl::StripAsciiWhitespace(*content));
    source = absl::StrCat("token file ", file);
    if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": empty"));
  }
  // A bearer token is visible ASCII (RFC 6750 b64token is a subset); anything else would be
  // refused by gRPC or mangled. The token itself never appears in the error.
  if (token.size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": longer than 4096 bytes"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": not a bearer token (visible ASCII characters only)"));
    }
  }
  return token;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const std::string& address,
                                                             const ConnectOptions& options) {
  if (address.empty()) return absl::InvalidArgumentError("daemon address is empty");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  bool tls = options.tls || !options.ca_file.empty() || !options.cert_file.empty() ||
             !options.key_file.empty();
  if (tls) {
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs both cert_file and key_file (--cert and --key)");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadWholeFile(options.ca_file, "CA file");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!options.cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadWholeFile(options.cert_file, "certificate file");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadWholeFile(options.key_file, "key file");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }

  absl::StatusOr<std::string> token = ResolveToken(options);
  if (!token.ok()) return token.status();
  if (token->empty()) return grpc::CreateCustomChannel(address, credentials, args);
  auto header = std::make_shared<const std::string>(absl::StrCat("Bearer ", *token));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<TokenInterceptorFactory>(header));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args,
                                                                 std::move(factories));
}

}  // namespace mailpool
