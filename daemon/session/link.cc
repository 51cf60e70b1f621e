#include "session/link.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "imap/client.h"
#include "pop3/client.h"
#include "smtp/client.h"

namespace mailpool::session {
namespace {

using Phase = wire::ClientProtocol::Phase;

std::unique_ptr<wire::ClientProtocol> NewClient(const LinkSpec& spec) {
  switch (spec.protocol) {
    case Protocol::kImap: {
      imap::Options options;
      options.login = spec.login;
      options.initial_folder = spec.initial_folder;
      return imap::NewClient(std::move(options));
    }
    case Protocol::kPop3:
      return pop3::NewClient(spec.login);
    case Protocol::kSmtp:
      return smtp::NewClient(spec.login);
  }
  return nullptr;
}

}  // namespace

absl::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kImap:
      return "IMAP";
    case Protocol::kPop3:
      return "POP3";
    case Protocol::kSmtp:
      return "SMTP";
  }
  return "?";
}

Link::Link(net::EventLoop& loop, LinkSpec spec, std::function<absl::Duration()> silence_timeout)
    : loop_(loop),
      spec_(std::move(spec)),
      silence_timeout_(std::move(silence_timeout)),
      silence_timer_(loop) {}

Link::~Link() {
  *alive_ = false;
  Abort();
}

bool Link::ready() const {
  return broken_.ok() && client_ && connection_ && client_->phase() == Phase::kReady &&
         op_ == Op::kNone;
}

const wire::ServerInfo* Link::server_info() const { return client_ ? &client_->info() : nullptr; }

net::TlsInfo Link::tls_info() const {
  return connection_ ? connection_->tls_info() : net::TlsInfo{};
}

void Link::Open(Done done) {
  if (connection_) Abort();
  broken_ = absl::OkStatus();
  paused_ = false;
  aborted_ = false;
  op_ = Op::kOpen;
  done_ = std::move(done);
  client_ = NewClient(spec_);
  net::Endpoint endpoint = spec_.endpoint;
  endpoint.connect_timeout = std::min(endpoint.connect_timeout, silence_timeout_());
  net::Connection::Connect(
      loop_, endpoint,
      [this, alive = alive_](absl::StatusOr<std::unique_ptr<net::Connection>> connection) {
        if (*alive) OnConnected(std::move(connection));
      });
}

void Link::OnConnected(absl::StatusOr<std::unique_ptr<net::Connection>> connection) {
  if (aborted_) return;  // the connection, if any, closes as it goes out of scope
  if (!connection.ok()) return Complete(connection.status());
  connection_ = std::move(*connection);
  if (spec_.login.security == wire::Security::kImplicitTls) {
    tls_in_progress_ = true;
    ArmSilenceTimer();
    connection_->StartTls(spec_.tls, [this](absl::Status status) {
      tls_in_progress_ = false;
      if (!status.ok()) return Complete(status);
      Pump();
    });
    return;
  }
  Pump();
}

void Link::Noop(Done done) {
  Run([](wire::ClientProtocol& client) { client.StartNoop(); }, std::move(done));
}

void Link::Run(absl::AnyInvocable<void(wire::ClientProtocol&)> start, Done done) {
  if (!ready()) {
    done(broken_.ok() ? absl::FailedPreconditionError("the link is busy") : broken_);
    return;
  }
  op_ = Op::kCommand;
  paused_ = false;
  done_ = std::move(done);
  start(*client_);
  Pump();
}

void Link::Logout(LogoutDone done) {
  if (!ready()) {
    Abort();
    done(broken_.ok() ? absl::FailedPreconditionError("the link is not ready") : broken_, "");
    return;
  }
  op_ = Op::kLogout;
  logout_done_ = std::move(done);
  client_->StartLogout();
  Pump();
}

void Link::PauseReading() {
  paused_ = true;
  silence_timer_.Cancel();
}

void Link::ResumeReading() {
  if (!paused_) return;
  paused_ = false;
  if (op_ == Op::kNone || !connection_ || connection_->closed()) return;
  ArmSilenceTimer();
  EnsureReading();
}

void Link::FailPending(absl::Status status) {
  Abort();
  op_ = Op::kNone;
  if (auto cb = std::move(done_)) {
    done_ = nullptr;
    cb(status);
  }
  if (auto cb = std::move(logout_done_)) {
    logout_done_ = nullptr;
    cb(status, std::string());
  }
}

void Link::Abort() {
  aborted_ = true;
  silence_timer_.Cancel();
  if (connection_) connection_->Close();
  reading_ = false;
}

void Link::Pump() {
  if (!connection_ || connection_->closed()) return;
  std::string output = client_->TakeOutput();
  if (!output.empty()) {
    connection_->Write(std::move(output), [this, alive = alive_](absl::Status status) {
      if (*alive && !status.ok()) MarkBroken(status);
    });
  }
  switch (client_->phase()) {
    case Phase::kNeedTls:
      if (tls_in_progress_) return;
      tls_in_progress_ = true;
      ArmSilenceTimer();
      connection_->StartTls(spec_.tls, [this](absl::Status status) {
        tls_in_progress_ = false;
        if (!status.ok()) return Complete(status);
        client_->OnTlsEstablished();
        Pump();
      });
      return;
    case Phase::kReady: {
      if (op_ == Op::kOpen || op_ == Op::kCommand) {
        auto alive = alive_;
        Complete(client_->error());
        if (!*alive) return;
      }
      EnsureReading();  // notice a server that hangs up while idle
      return;
    }
    case Phase::kClosed:
      if (op_ == Op::kNone) {
        // The server said goodbye on its own (IMAP "* BYE Autologout", POP3 -ERR).
        const std::string& reply = client_->last_reply();
        return MarkBroken(MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                                          "the server closed the session", "", reply));
      }
      return Complete(absl::OkStatus());
    case Phase::kFailed:
      return Complete(client_->error().ok() ? absl::UnavailableError("protocol failure")
                                            : client_->error());
    case Phase::kLoggingIn:
    case Phase::kBusy:
      ArmSilenceTimer();
      EnsureReading();
      return;
  }
}

void Link::EnsureReading() {
  if (reading_ || paused_ || !connection_ || connection_->closed()) return;
  reading_ = true;
  connection_->Read([this](absl::Status status, absl::string_view data) {
    reading_ = false;
    if (!status.ok()) return MarkBroken(status);
    client_->OnBytes(data);
    Pump();
  });
}

void Link::ArmSilenceTimer() {
  if (paused_) return;  // waiting for our consumer, not for the server
  absl::Duration timeout = silence_timeout_();
  silence_timer_.Start(timeout, [this, timeout] {
    MarkBroken(
        MailServerError(absl::StatusCode::kDeadlineExceeded, "SERVER_SILENT",
                        absl::StrCat(ProtocolName(spec_.protocol), " server ", spec_.endpoint.host,
                                     " sent nothing for ", absl::FormatDuration(timeout))));
  });
}

void Link::MarkBroken(absl::Status status) {
  if (broken_.ok()) broken_ = status;
  Complete(status);
}

void Link::Complete(absl::Status status) {
  // A server may echo what it was sent; its words never carry our secrets onward.
  status = RedactSecret(RedactSecret(status, spec_.login.password.Reveal()),
                        spec_.login.oauth2_token.Reveal());
  Op op = op_;
  op_ = Op::kNone;
  paused_ = false;
  silence_timer_.Cancel();
  bool fatal = !status.ok() && (op == Op::kOpen || op == Op::kLogout || !broken_.ok() ||
                                client_->phase() == Phase::kFailed);
  if (op == Op::kLogout || fatal) {
    if (!status.ok() && broken_.ok() && op != Op::kLogout) broken_ = status;
    Abort();
  }
  if (op == Op::kLogout) {
    auto cb = std::move(logout_done_);
    logout_done_ = nullptr;
    std::string reply = client_ ? client_->last_reply() : std::string();
    if (cb) cb(status, std::move(reply));
    return;
  }
  if (op == Op::kNone) return;
  auto cb = std::move(done_);
  done_ = nullptr;
  if (cb) cb(status);
}

}  // namespace mailpool::session
