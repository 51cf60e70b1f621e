// mailpool C++ client: a thin typed layer over the generated mailpool.v1 stubs.
//
//   mailpool::Client client("127.0.0.1:50551");
//   mailpool::StartOptions o;
//   o.host = "imap.example.org"; o.security = mailpool::v1::SECURITY_IMPLICIT_TLS;
//   o.user = "alice@example.org"; o.password = secret;
//   absl::StatusOr<mailpool::Session> s = client.StartImap(o);
//   if (!s.ok()) { std::cerr << s.status() << " server said: " <<
//   mailpool::ServerReply(s.status()); } for (const absl::StatusOr<mailpool::v1::EmailMessage>& m :
//   s->ListMessages()) { ... }
//   // the session closes (LOGOUT) when `s` goes out of scope, unless Release()d
//
// Errors are absl::Status with the gRPC code (same numbering), the daemon's message, and,
// as payloads, the standard google.rpc details (ErrorInfoOf, RetryDelayOf,
// FieldViolationsOf) and the mailpool.v1.ErrorDetail (ErrorDetailOf, ServerReply).
//
// Caller authentication (the daemon's --caller_tokens_file, --tls_*, Unix sockets):
//
//   mailpool::ClientOptions opts;
//   opts.connect.token_file = "/run/secrets/mailpool-token";   // or .token, $MAILPOOL_TOKEN
//   opts.connect.ca_file = "ca.pem";                           // TLS to the daemon
//   opts.connect.cert_file = "me.pem"; opts.connect.key_file = "me.key";   // mutual TLS
//   absl::StatusOr<mailpool::Client> c = mailpool::Client::Create("mail.internal:50551", opts);
//   mailpool::Client local("unix:/run/mailpool/mailpoold.sock");
#ifndef MAILPOOL_CLIENT_H_
#define MAILPOOL_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "mailpool/v1/errors.pb.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/message.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"

namespace mailpool {

// Type URL of the ErrorDetail payload on a failed call's absl::Status.
inline constexpr char kErrorDetailTypeUrl[] = "type.googleapis.com/mailpool.v1.ErrorDetail";
// Trailer that carries the serialized ErrorDetail, and the routing header.
inline constexpr char kErrorDetailTrailer[] = "mailpool-error-bin";
inline constexpr char kSessionHeader[] = "x-mailpool-session";
// Type URL of the google.rpc.Status payload (from grpc-status-details-bin).
inline constexpr char kRpcStatusTypeUrl[] = "type.googleapis.com/google.rpc.Status";
// Metadata key of the caller token ("Bearer <token>").
inline constexpr char kAuthorizationHeader[] = "authorization";

// The ErrorDetail the daemon attached to a failed call, if any.
std::optional<v1::ErrorDetail> ErrorDetailOf(const absl::Status& status);
// The mail server's reply line(s) from the ErrorDetail; empty if none.
std::string ServerReply(const absl::Status& status);
// Converts a finished call's grpc::Status (and its trailers) to absl::Status.
absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& context);

// The standard error details (google.rpc.Status from grpc-status-details-bin), if the
// daemon sent them.
std::optional<google::rpc::Status> RpcStatusOf(const absl::Status& status);
// google.rpc.ErrorInfo: reason (e.g. "AUTH_FAILED"), domain "mailpool.dev", metadata
// "server_reply", "command" (redacted), "protocol".
std::optional<google::rpc::ErrorInfo> ErrorInfoOf(const absl::Status& status);
// google.rpc.RetryInfo's delay: present when the daemon says retrying helps.
std::optional<absl::Duration> RetryDelayOf(const absl::Status& status);
// google.rpc.BadRequest's field violations (INVALID_ARGUMENT); empty if none.
std::vector<google::rpc::BadRequest::FieldViolation> FieldViolationsOf(const absl::Status& status);

// How to reach mailpoold and prove who the caller is.
struct ConnectOptions {
  // Caller token, sent as `authorization: Bearer <token>` on every call (never logged, never
  // in an error). `token`, else the file `token_file` (surrounding whitespace stripped),
  // else, with token_from_environment, $MAILPOOL_TOKEN, else the file $MAILPOOL_TOKEN_FILE.
  // None of them: no token.
  std::string token;
  std::string token_file;
  bool token_from_environment = true;
  // TLS to the daemon: on when `tls` is set or any file below is given.
  bool tls = false;
  std::string ca_file;          // PEM CA(s) that sign the daemon's certificate; empty: system
  std::string cert_file;        // client certificate chain (PEM) for mutual TLS, with key_file
  std::string key_file;         // its private key (PEM)
  std::string tls_server_name;  // name to verify instead of the address's host
};

// A channel to `address` ("host:port", "unix:/path/to.sock", or any gRPC target) with
// `options`. Errors: unreadable files, a malformed token, a certificate without a key.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const std::string& address,
                                                             const ConnectOptions& options = {});
// The token `options` select ("" for none), validated (visible ASCII); for callers that
// build their own channel.
absl::StatusOr<std::string> ResolveToken(const ConnectOptions& options);

// An input range of absl::StatusOr<T>: page after page of a listing, or the messages of a
// server stream. Iteration stops after the first error, which is yielded as an item:
//
//   for (const absl::StatusOr<v1::Session>& s : client.ListSessions()) {
//     if (!s.ok()) { handle(s.status()); break; }
//     use(*s);
//   }
//
// A range is single-pass; leaving the loop early cancels the underlying stream.
template <typename T>
class Range {
 public:
  // Returns the next item, or nullopt at the end.
  using Source = std::function<std::optional<absl::StatusOr<T>>()>;

  explicit Range(Source source) : source_(std::move(source)) {}
  Range(Range&&) noexcept = default;
  Range& operator=(Range&&) noexcept = default;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = absl::StatusOr<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    iterator() = default;
    reference operator*() const { return *range_->current_; }
    pointer operator->() const { return &*range_->current_; }
    iterator& operator++() {
      range_->Advance();
      if (!range_->current_) range_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.range_ == b.range_; }
    friend bool operator!=(const iterator& a, const iterator& b) { return !(a == b); }

   private:
    friend class Range;
    explicit iterator(Range* r) : range_(r) {}
    Range* range_ = nullptr;
  };

  iterator begin() {
    if (!started_) {
      started_ = true;
      Advance();
    }
    return current_ ? iterator(this) : iterator();
  }
  iterator end() { return iterator(); }

 private:
  void Advance() {
    if (done_) {
      current_.reset();
      return;
    }
    current_ = source_();
    if (!current_ || !current_->ok()) done_ = true;
  }

  Source source_;
  std::optional<absl::StatusOr<T>> current_;
  bool started_ = false;
  bool done_ = false;
};

// Refreshable OAuth2 credentials: the daemon gets and renews the access tokens (see
// session.proto OAuth2Refresh). Either `provider` (the daemon's --oauth2_providers_file) or
// `token_endpoint` + `client_id` (+ `client_secret`).
struct OAuth2Refresh {
  std::string refresh_token;
  std::string provider;
  std::string token_endpoint;
  std::string client_id;
  std::string client_secret;
  std::string scopes;
};

// How to reach and authenticate to a mail server. Fields left at their defaults take the
// daemon's defaults (see session.proto).
struct StartOptions {
  std::string host;
  uint32_t port = 0;                                 // 0: the protocol default for the security
  v1::Security security = v1::SECURITY_UNSPECIFIED;  // unspecified: STARTTLS
  std::string user;
  std::optional<std::string> password;
  std::optional<std::string> oauth2_token;
  std::optional<OAuth2Refresh> oauth2_refresh;  // instead of password / oauth2_token
  v1::AuthMechanism mechanism = v1::AUTH_MECHANISM_UNSPECIFIED;
  bool allow_insecure_auth = false;
  std::string ca_pem;  // extra trusted CA(s), PEM
  std::string server_name;
  bool dangerously_skip_verification = false;
  absl::Duration connect_timeout = absl::ZeroDuration();  // 0: daemon default
  std::string name;                                       // address the session by name
  absl::Duration session_timeout = absl::ZeroDuration();  // 0: the daemon default
  std::string folder;                                     // IMAP: initial folder
  bool asynchronous = false;                              // SMTP: queue sends
  std::string ehlo_name;                                  // SMTP
  // pop3_smtp only: the SMTP side (empty host: the POP3 host; port 0: 25 or 465).
  std::string smtp_host;
  uint32_t smtp_port = 0;
  v1::Security smtp_security = v1::SECURITY_UNSPECIFIED;  // unspecified: `security`
};

// New credentials of a session (Session::UpdateCredentials): a refreshed OAuth2 token, a
// changed password.
struct CredentialsUpdate {
  std::string user;  // must be the session's; empty: the session's (last_info().user())
  std::optional<std::string> password;
  std::optional<std::string> oauth2_token;
  std::optional<OAuth2Refresh> oauth2_refresh;  // instead of password / oauth2_token
  v1::AuthMechanism mechanism = v1::AUTH_MECHANISM_UNSPECIFIED;
  bool allow_insecure_auth = false;
};

struct ClientOptions {
  absl::Duration timeout = absl::Seconds(30);         // deadline of each unary call
  absl::Duration start_timeout = absl::Seconds(120);  // deadline of StartSession
  ConnectOptions connect;                             // TLS and token (address constructors)
};

class Session;

namespace internal {
struct Core;
}  // namespace internal

// A connection to mailpoold. Cheap to copy (shares the channel); thread-safe.
class Client {
 public:
  // $MAILPOOL_ADDR, else 127.0.0.1:50551.
  static std::string DefaultAddress();

  // A client of `address` ("host:port" or "unix:/path"); returns the error of a bad
  // options.connect (unreadable CA or token file, malformed token).
  static absl::StatusOr<Client> Create(const std::string& address = DefaultAddress(),
                                       ClientOptions options = {});
  // The same; a bad options.connect makes every call fail with its error.
  explicit Client(const std::string& address = DefaultAddress(), ClientOptions options = {});
  // Over your own channel (see CreateChannel); options.connect is not used.
  explicit Client(std::shared_ptr<grpc::ChannelInterface> channel, ClientOptions options = {});

  // SessionService
  absl::StatusOr<Session> StartSession(const v1::StartSessionRequest& request);
  absl::StatusOr<Session> StartImap(const StartOptions& options);
  absl::StatusOr<Session> StartPop3(const StartOptions& options);
  absl::StatusOr<Session> StartSmtp(const StartOptions& options);
  absl::StatusOr<Session> StartPop3Smtp(const StartOptions& options);
  // A handle on an existing session (by ID or name) that closes it on destruction unless
  // released.
  absl::StatusOr<Session> Attach(absl::string_view id_or_name);
  absl::StatusOr<v1::Session> GetSession(absl::string_view id_or_name);
  // Returns the server's reply to LOGOUT/QUIT.
  absl::StatusOr<std::string> CloseSession(absl::string_view id_or_name);
  // The caller's sessions; all_callers: every caller's (admin callers only, else
  // PERMISSION_DENIED). Session::owner() names the identity that holds each.
  Range<v1::Session> ListSessions(int page_size = 0, bool all_callers = false);
  absl::StatusOr<absl::Duration> GetDefaultTimeout();
  absl::StatusOr<absl::Duration> SetDefaultTimeout(absl::Duration timeout);

  // MessageService (no session)
  absl::StatusOr<v1::BuildSourceResponse> BuildSource(const v1::EmailMessage& message,
                                                      const v1::BuildOptions& options = {});
  absl::StatusOr<v1::ParseSourceResponse> ParseSource(std::string source,
                                                      const v1::ParseOptions& options = {});

  // SendService calls that need no session
  absl::StatusOr<v1::CheckAddressResponse> CheckAddress(absl::string_view address,
                                                        bool strict = false);
  absl::StatusOr<v1::SendStatus> GetSendStatus(absl::string_view send_id);
  absl::StatusOr<v1::SendStatus> CancelSend(absl::string_view send_id);
  Range<v1::SendStatus> ListOutbox(v1::ListOutboxRequest request = {});
  Range<v1::SendStatus> WatchSendStatus(v1::WatchSendStatusRequest request = {});

  // The generated stubs, for anything this layer does not wrap.
  v1::SessionService::StubInterface& session_stub();
  v1::MailboxService::StubInterface& mailbox_stub();
  v1::SendService::StubInterface& send_stub();
  v1::MessageService::StubInterface& message_stub();

 private:
  std::shared_ptr<internal::Core> core_;
};

// One pooled session. Move-only; closes the session (LOGOUT/QUIT) when destroyed unless
// Close() or Release() was called. Every call is scoped to this session (its ID goes in
// the request and in the x-mailpool-session header).
class Session {
 public:
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  const std::string& id() const { return info_.id(); }
  const std::string& name() const { return info_.name(); }
  v1::Protocol protocol() const { return info_.protocol(); }
  // The description from the start, Info(), SetTimeout() or UpdateCredentials(), without a
  // call.
  const v1::Session& last_info() const { return info_; }
  bool closed() const { return !owned_; }

  // SessionService
  absl::StatusOr<v1::Session> Info();
  // LOGOUT/QUIT; returns the server's reply. After a successful Close (or Release) the
  // destructor does nothing; a second Close returns "".
  absl::StatusOr<std::string> Close();
  // Keep the session in the daemon; the handle forgets it. Returns the ID.
  std::string Release();
  // This session's server-silence timeout; zero: follow the daemon default.
  absl::StatusOr<v1::Session> SetTimeout(absl::Duration timeout);
  // New credentials for every later login (UpdateSession). Logged-in connections stay; a
  // session whose login was refused logs in again during the call: its error (e.g.
  // UNAUTHENTICATED) is returned, or the session READY.
  absl::StatusOr<v1::Session> UpdateCredentials(const CredentialsUpdate& credentials);

  // MailboxService (POP3 and IMAP). Request arguments need not set `session`.
  absl::StatusOr<v1::MailboxStatus> Status(absl::string_view folder = "");
  // Every message, page after page (newest first unless the request says otherwise).
  Range<v1::EmailMessage> ListMessages(v1::ListMessagesRequest request = {});
  absl::StatusOr<v1::ListMessagesResponse> ListMessagesPage(v1::ListMessagesRequest request);
  absl::StatusOr<v1::EmailMessage> GetMessage(absl::string_view id,
                                              v1::MessageView view = v1::MESSAGE_VIEW_FULL);
  absl::StatusOr<v1::GetMessageResponse> GetMessage(v1::GetMessageRequest request);
  Range<v1::StreamMessageResponse> StreamMessage(v1::StreamMessageRequest request);
  Range<v1::GetAttachmentResponse> GetAttachment(v1::GetAttachmentRequest request);
  Range<v1::EmailMessage> SearchMessages(v1::SearchMessagesRequest request);
  absl::StatusOr<v1::DeleteMessagesResponse> DeleteMessages(v1::DeleteMessagesRequest request);
  absl::StatusOr<v1::ListFoldersResponse> ListFolders(v1::ListFoldersRequest request = {});
  absl::StatusOr<v1::MailboxStatus> SelectFolder(absl::string_view folder, bool read_only = false);
  absl::StatusOr<v1::CreateFolderResponse> CreateFolder(v1::CreateFolderRequest request);
  absl::Status DeleteFolder(absl::string_view folder);
  absl::StatusOr<v1::RenameFolderResponse> RenameFolder(absl::string_view folder,
                                                        absl::string_view new_name);
  absl::StatusOr<v1::CopyMessagesResponse> CopyMessages(v1::CopyMessagesRequest request);
  absl::StatusOr<v1::MoveMessagesResponse> MoveMessages(v1::MoveMessagesRequest request);
  absl::StatusOr<v1::UpdateFlagsResponse> UpdateFlags(v1::UpdateFlagsRequest request);
  absl::StatusOr<v1::AppendMessageResponse> AppendMessage(v1::AppendMessageRequest request);
  absl::StatusOr<v1::ExpungeResponse> Expunge(v1::ExpungeRequest request = {});
  Range<v1::WatchMailboxResponse> WatchMailbox(v1::WatchMailboxRequest request = {});
  absl::StatusOr<v1::RefreshResponse> Refresh();

  // SendService (SMTP)
  absl::StatusOr<v1::SendMessageResponse> Send(const v1::EmailMessage& message);
  absl::StatusOr<v1::SendMessageResponse> SendMessage(v1::SendMessageRequest request);
  absl::StatusOr<v1::SendStatus> GetSendStatus(absl::string_view send_id);
  absl::StatusOr<v1::SendStatus> CancelSend(absl::string_view send_id);
  Range<v1::SendStatus> ListOutbox(v1::ListOutboxRequest request = {});
  Range<v1::SendStatus> WatchSendStatus(v1::WatchSendStatusRequest request = {});
  // CHECK_MODE_SERVER: ask this session's SMTP server.
  absl::StatusOr<v1::CheckAddressResponse> CheckAddress(absl::string_view address,
                                                        bool allow_vrfy = false);

 private:
  friend class Client;
  Session(std::shared_ptr<internal::Core> core, v1::Session info);

  std::shared_ptr<internal::Core> core_;
  v1::Session info_;
  bool owned_ = true;
};

// Builds an Address from "alice@example.org" or "Alice <alice@example.org>".
v1::Address MakeAddress(absl::string_view text);

}  // namespace mailpool

#endif  // MAILPOOL_CLIENT_H_
