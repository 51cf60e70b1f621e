// Session: what a caller holds by ID — one link (IMAP, POP3, SMTP) or two (the legacy
// combined POP3 + SMTP session) — with its name, owner, timeout and timestamps.
//
//   auto session = std::make_unique<Session>(loop, id, owner, std::move(spec), clock);
//   session->Start([](absl::Status s) { ... });
//   SessionSnapshot view = session->Snapshot();
//   session->UpdateCredentials(per_link_logins, [](absl::Status s) { ... }, call);
//   session->Close([](absl::Status s, std::string reply) { ... }, call);
//
// Loop-confined.
#ifndef MAILPOOL_SESSION_SESSION_H_
#define MAILPOOL_SESSION_SESSION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/optional.h"
#include "session/link.h"

namespace mailpool::session {

enum class Kind { kImap, kPop3, kSmtp, kPop3Smtp };
enum class State { kConnecting, kReady, kBusy, kBroken, kClosed };

struct SessionSpec {
  Kind kind = Kind::kImap;
  std::string name;                        // optional caller-chosen name
  absl::optional<absl::Duration> timeout;  // unset: the daemon default
  bool asynchronous = false;               // SMTP: queue sends
  std::vector<LinkSpec> links;             // POP3 first for kPop3Smtp; moved into the links
};

struct LinkSnapshot {
  Protocol protocol = Protocol::kImap;
  std::string host;
  uint16_t port = 0;
  wire::Security security = wire::Security::kPlain;
  net::TlsInfo tls;
  wire::ServerInfo server;
};

struct SessionSnapshot {
  std::string id;
  std::string name;
  std::string owner;
  Kind kind = Kind::kImap;
  State state = State::kConnecting;
  std::string user;
  std::vector<LinkSnapshot> links;
  absl::Duration timeout;
  bool timeout_overridden = false;
  absl::Time create_time;
  absl::Time last_use_time;
  std::string current_folder;
  bool asynchronous = false;
  uint32_t reconnect_count = 0;
  std::string last_error;
};

class Session {
 public:
  // State that a module above the session (mailbox/: the POP3 snapshot, the cache of
  // headers) keeps per session; destroyed with the session. Loop-confined.
  class Extension {
   public:
    virtual ~Extension() = default;
    // Close() is starting: end what would keep the links busy (an IMAP IDLE) so that
    // LOGOUT can go out.
    virtual void OnClose() {}
  };

  using Done = absl::AnyInvocable<void(absl::Status)>;
  // OK with the server's reply (empty if it said nothing), or why the close was cut short.
  using CloseDone = absl::AnyInvocable<void(absl::Status status, std::string reply)>;

  // `default_timeout` gives the daemon-wide server-silence timeout when asked. `policy`
  // (clock, reconnect settings, handshake gate) must outlive the session; null: defaults.
  Session(net::EventLoop& loop, std::string id, std::string owner, SessionSpec spec,
          std::function<absl::Duration()> default_timeout, const LinkPolicy* policy = nullptr);
  ~Session();

  // Opens every link; on failure the links opened so far are closed. `call` (optional)
  // is the StartSession call: its cancellation abandons the start.
  void Start(Done done, std::shared_ptr<CallToken> call = nullptr);
  // LOGOUT/QUIT on every link (whatever their replies), then kClosed. The reply is the
  // first link's. `call` (optional) is the CloseSession call: when it is cancelled or its
  // deadline passes first, the links are dropped at once (connections reset, commands
  // still queued answered with the call's status), the session is kClosed and `done` gets
  // the call's status (CANCELLED / DEADLINE_EXCEEDED).
  void Close(CloseDone done, std::shared_ptr<CallToken> call = nullptr);

  // New credentials for every later login: `per_link[i]` for links()[i] (see
  // Link::UpdateCredentials; logged-in connections stay). A link whose login had been
  // refused logs in again now, bounded by `call` (optional); `done` gets the first such
  // login's error, or OK.
  void UpdateCredentials(std::vector<wire::LoginOptions> per_link, Done done,
                         std::shared_ptr<CallToken> call = nullptr);

  // Drops every link and answers a pending Start or Close with `status` (Close with an
  // empty reply). For shutdown: every caller gets an answer.
  void FailPending(absl::Status status);
  bool closing() const { return closing_; }

  void SetTimeout(absl::optional<absl::Duration> timeout) { spec_.timeout = timeout; }
  absl::Duration EffectiveTimeout() const;
  void Touch() { last_use_ = clock_->Now(); }
  absl::Time last_use() const { return last_use_; }
  absl::Time create_time() const { return created_; }
  // Started (logged in once) and not closed or closing: calls may use it.
  bool usable() const { return started_ && !closed_ && !closing_; }
  const std::vector<std::unique_ptr<Link>>& links() const { return links_; }

  // The session's link for `protocol`, or null (e.g. SMTP on an IMAP session).
  Link* link(Protocol protocol);
  Kind kind() const { return spec_.kind; }
  Extension* extension() const { return extension_.get(); }
  void set_extension(std::unique_ptr<Extension> extension) { extension_ = std::move(extension); }

  const std::string& id() const { return id_; }
  const std::string& owner() const { return owner_; }
  const std::string& name() const { return spec_.name; }
  State state() const;
  SessionSnapshot Snapshot() const;

 private:
  void StartLink(size_t index, std::shared_ptr<CallToken> call);
  void CloseLink(size_t index);
  // The close call ended first: drop the links and answer with `why`.
  void AbandonClose(const absl::Status& why);

  net::EventLoop& loop_;
  std::string id_;
  std::string owner_;
  SessionSpec spec_;
  std::function<absl::Duration()> default_timeout_;
  const Clock* clock_;
  std::vector<std::unique_ptr<Link>> links_;
  absl::Time created_ = clock_->Now();
  absl::Time last_use_ = created_;
  bool started_ = false;
  bool closed_ = false;
  bool closing_ = false;
  std::string last_error_;
  Done start_done_;
  CloseDone close_done_;
  CallToken::Watch close_watch_;
  std::string close_reply_;
  std::unique_ptr<Extension> extension_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_SESSION_H_
