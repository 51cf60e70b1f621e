// Link: one protocol client joined to one connection on the event loop.
//
// A Link connects, runs implicit TLS or STARTTLS when the client asks for it, feeds every
// byte from the server to the client, writes what the client produces, and bounds every
// wait for the server by the silence timeout.
//
//   Link link(loop, spec, [&] { return absl::Minutes(10); });
//   link.Open([](absl::Status s) { /* logged in, or why not */ });
//   link.Logout([](absl::Status s, std::string reply) { ... });
//
// Loop-confined. Callbacks run on the loop and never after the Link is destroyed.
#ifndef MAILPOOL_SESSION_LINK_H_
#define MAILPOOL_SESSION_LINK_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "net/timer.h"
#include "wire/protocol.h"

namespace mailpool::session {

enum class Protocol { kImap, kPop3, kSmtp };
absl::string_view ProtocolName(Protocol protocol);

// Everything needed to open one link. Holds the credentials (as Secrets).
struct LinkSpec {
  Protocol protocol = Protocol::kImap;
  net::Endpoint endpoint;
  net::TlsOptions tls;
  wire::LoginOptions login;    // login.security says plain / STARTTLS / implicit TLS
  std::string initial_folder;  // IMAP only
};

class Link {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;
  using LogoutDone = absl::AnyInvocable<void(absl::Status, std::string reply)>;
  // `silence_timeout` is asked each time the link starts waiting for the server.
  Link(net::EventLoop& loop, LinkSpec spec, std::function<absl::Duration()> silence_timeout);
  ~Link();

  // Connects, negotiates TLS and logs in. Call once, or again after Logout() or Abort() to
  // start over on a new connection with a new client (POP3 Refresh: QUIT commits the
  // deletions, a new login sees new mail); broken() is cleared.
  void Open(Done done);
  // NOOP; fails if the link is not ready.
  void Noop(Done done);
  // Runs one protocol command: `start` is called with the ready client and must start
  // exactly one command on it (e.g. a POP3 RETR whose data goes to a sink the caller gave
  // the client). `done` runs with client.error() once the client is ready again, or with
  // the failure that broke the link. FAILED_PRECONDITION if the link is busy or broken.
  void Run(absl::AnyInvocable<void(wire::ClientProtocol&)> start, Done done);
  // Flow control for a command whose data goes to a slow consumer: while paused the link
  // reads nothing more from the server (the kernel's buffers then push back on it) and the
  // silence timeout does not run. Resume continues. A new command starts unpaused.
  void PauseReading();
  void ResumeReading();
  // LOGOUT/QUIT, then closes the connection whatever the server said.
  void Logout(LogoutDone done);
  // Drops the connection at once; a pending Open() never completes (its callback is
  // dropped), so the owner must answer its own callers.
  void Abort();
  // Abort(), and answers a pending Open/Run/Logout with `status`.
  void FailPending(absl::Status status);

  bool ready() const;
  const LinkSpec& spec() const { return spec_; }
  const wire::ServerInfo* server_info() const;  // null before the client exists
  net::TlsInfo tls_info() const;
  // Why the link is unusable (connection lost, protocol violation), OK otherwise.
  const absl::Status& broken() const { return broken_; }

 private:
  enum class Op { kNone, kOpen, kCommand, kLogout };
  void OnConnected(absl::StatusOr<std::unique_ptr<net::Connection>> connection);
  void Pump();
  void EnsureReading();
  void ArmSilenceTimer();
  void Complete(absl::Status status);
  void MarkBroken(absl::Status status);

  net::EventLoop& loop_;
  LinkSpec spec_;
  std::function<absl::Duration()> silence_timeout_;
  std::unique_ptr<net::Connection> connection_;
  std::unique_ptr<wire::ClientProtocol> client_;
  net::Timer silence_timer_;
  Op op_ = Op::kNone;
  Done done_;
  LogoutDone logout_done_;
  bool reading_ = false;
  bool paused_ = false;
  bool tls_in_progress_ = false;
  bool aborted_ = false;
  absl::Status broken_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_LINK_H_
