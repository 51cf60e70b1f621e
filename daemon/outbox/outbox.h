// Outbox: the durable queue of asynchronous sends, in an embedded SQLite database.
//
// Why SQLite: durable (a commit is on disk when it returns), transactional (a send and
// its message bytes go in together, or not at all), embedded (no server to run; the
// default configuration needs no flag) and well kept (Debian's libsqlite3).
// The database runs in WAL mode with synchronous=FULL: every commit is fsynced before
// Add() or a state change returns, so QUEUED is never answered for a message not on disk.
//
// Group commit: new sends go to a writer thread that commits every send waiting for it in
// one transaction (one fsync; at most Options::max_batch), then calls each send's callback.
// AddAsync() returns at once and its callback runs after the commit, on the writer thread,
// so a gRPC handler answers QUEUED only once its send is on disk without any thread waiting
// for the disk but the writer. A send that fails (e.g. a reused idempotency key) fails
// alone: each send is a savepoint inside the batch's transaction.
//
//   absl::StatusOr<std::unique_ptr<Outbox>> box = Outbox::Open("/var/lib/mailpool/outbox.db");
//   Outbox::NewSend send;  // owner, match key, session, envelope, message bytes ...
//   absl::StatusOr<Outbox::Added> added = (*box)->Add(std::move(send));   // waits
//   (*box)->AddAsync(std::move(send), [](absl::StatusOr<Outbox::Added> added) { ... });
//   absl::StatusOr<Outbox::Send> next = (*box)->NextPending(match_key);
//   (*box)->MarkSending(id); (*box)->MarkDataInFlight(id); (*box)->Finish(id, outcome);
//
// States (v1::SendState): QUEUED (waiting; `next_attempt_time` says when), PENDING (an
// attempt is running; the database calls it SENDING), SENT, ERROR, CANCELLED (final).
// Crash safety: MarkSending() is committed before MAIL FROM, MarkDataInFlight() before the
// message data (and its end) go out. Open() and Recover() turn what a crash left behind
// into QUEUED again: a send whose data was in flight is marked possibly_sent_before_crash
// (the server may have taken it); any other was certainly not delivered. Nothing is lost.
//
// Credentials are never stored: a pending send waits for an asynchronous session of the
// same owner, server and user (its match key) to deliver it.
//
// Thread-safe: one connection behind a mutex (the writer thread adds, gRPC threads read,
// the event loop changes states). Listeners run after each committed change, outside the
// mutex; for added sends they run on the writer thread, before the AddAsync callback.
#ifndef MAILPOOL_OUTBOX_OUTBOX_H_
#define MAILPOOL_OUTBOX_OUTBOX_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mailpool/v1/send.pb.h"

struct sqlite3;

namespace mailpool::outbox {

// Finished sends (SENT, ERROR, CANCELLED) are forgotten after this long.
inline constexpr absl::Duration kKeepFinished = absl::Hours(24 * 7);
// An idempotency key protects against a second send for this long.
inline constexpr absl::Duration kIdempotencyWindow = absl::Hours(24);

// The default database path when no flag gives one: $XDG_STATE_HOME/mailpool/outbox.db,
// else $HOME/.local/state/mailpool/outbox.db, else ./mailpool-outbox.db.
std::string DefaultPath();

class Outbox {
 public:
  // One send as stored. `status` is what GetSendStatus shows.
  struct Send {
    int64_t seq = 0;  // queue order
    std::string owner;
    std::string match_key;
    v1::Envelope envelope;
    bool require_all_recipients = false;
    bool data_in_flight = false;
    v1::SendStatus status;
  };
  // What SendMessage queues.
  struct NewSend {
    std::string send_id;
    std::string owner;
    std::string match_key;
    std::string session_id;
    std::string idempotency_key;  // empty: none
    std::string request_hash;     // tells a retry from a different request with the same key
    v1::Envelope envelope;
    bool require_all_recipients = false;
    std::string message_id;
    std::string subject;
    std::string source;  // the message bytes
  };
  struct Added {
    v1::SendStatus status;
    bool existing = false;  // an earlier send with the same idempotency key
  };
  // The end of one attempt.
  struct Outcome {
    v1::SendState state = v1::SEND_STATE_SENT;  // SENT, QUEUED (retry later) or ERROR
    std::string detail;
    std::string server_reply;
    std::vector<v1::RecipientResult> recipients;
    absl::Time next_attempt_time;  // QUEUED only
    // The attempt was cut off (connection lost or silent, 4xx): if its data was in flight
    // the server may have the message, so the send is marked possibly sent.
    bool interrupted = false;
  };
  struct ListQuery {
    std::string owner;
    std::string session_id;  // empty: all the owner's
    std::vector<v1::SendState> states;
    int64_t after_seq = 0;
    int limit = 100;
  };
  using Listener = std::function<void(const Send&)>;
  using AddDone = absl::AnyInvocable<void(absl::StatusOr<Added>)>;

  struct Options {
    // Sends committed together (one transaction, one fsync) at most. 1: one commit per
    // send, as without group commit (the benchmarks' baseline). Must be at least 1.
    int max_batch = 256;
  };

  // Opens (creating if needed) the database and its directory, then Recover()s and starts
  // the writer thread.
  static absl::StatusOr<std::unique_ptr<Outbox>> Open(const std::string& path, Options options);
  static absl::StatusOr<std::unique_ptr<Outbox>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  // Commits the sends still waiting for the writer (their callbacks run), then closes.
  ~Outbox();

  // Commits a new QUEUED send with its bytes. With an idempotency key already used by
  // the owner within kIdempotencyWindow: the earlier send (existing = true), or
  // ALREADY_EXISTS when the request differs.
  // Blocks until committed: AddAsync() and a wait.
  absl::StatusOr<Added> Add(NewSend send);
  // The same, without waiting: `done` runs on the writer thread once the batch holding the
  // send has committed (or failed). `done` must not call Add() (it would wait for itself).
  void AddAsync(NewSend send, AddDone done);

  // Commits and sends committed by the writer thread since Open (for benchmarks: the mean
  // batch is sends / commits).
  struct WriterStats {
    uint64_t commits = 0;
    uint64_t sends = 0;
  };
  WriterStats Stats() const {
    return {commits_.load(std::memory_order_relaxed), sends_.load(std::memory_order_relaxed)};
  }
  absl::StatusOr<Send> Get(const std::string& owner, const std::string& send_id);
  // The owner's sends, oldest first. `*more` tells whether a next page exists.
  absl::StatusOr<std::vector<Send>> List(const ListQuery& query, bool* more);
  // The oldest QUEUED send with `match_key` (due or not), or NOT_FOUND.
  absl::StatusOr<Send> NextPending(const std::string& match_key);
  // Match keys with QUEUED sends.
  absl::StatusOr<std::vector<std::string>> PendingKeys();
  absl::StatusOr<std::string> Source(const std::string& send_id);

  // QUEUED -> SENDING, attempts + 1 (FAILED_PRECONDITION if it is no longer QUEUED, e.g.
  // cancelled meanwhile).
  absl::Status MarkSending(const std::string& send_id);
  // The data is about to go out: from now on the server may have the message.
  absl::Status MarkDataInFlight(const std::string& send_id);
  // SENDING -> outcome.state. An interrupted attempt whose data was in flight is marked
  // possibly sent. Final states drop the message bytes.
  absl::Status Finish(const std::string& send_id, Outcome outcome);
  // QUEUED -> CANCELLED. CANCELLED stays CANCELLED. FAILED_PRECONDITION otherwise.
  absl::StatusOr<Send> Cancel(const std::string& owner, const std::string& send_id);
  // Every SENDING send back to QUEUED (due now), possibly_sent_before_crash where its data
  // was in flight. Returns how many. For startup and after a graceful shutdown.
  absl::StatusOr<int> Recover();

  // Sends not yet final (QUEUED or SENDING). Cheap: no query.
  size_t Depth() const { return depth_.load(std::memory_order_relaxed); }

  // Called after every committed change of a send (added, state changed). Returns a
  // handle for RemoveListener.
  int AddListener(Listener listener);
  void RemoveListener(int handle);

 private:
  struct PendingAdd {
    NewSend send;
    AddDone done;
  };
  Outbox(sqlite3* db, Options options);
  absl::Status Exec(const char* sql);
  absl::StatusOr<Send> GetLocked(const std::string& send_id);
  // Inside the batch's transaction: the idempotency check and the inserts of one send.
  // Sets `*inserted` when a new row went in.
  absl::StatusOr<Added> AddLocked(const NewSend& send, bool* inserted);
  void WriterLoop();
  void CommitBatch(std::vector<PendingAdd>& batch);
  void Notify(const std::string& send_id);
  void NotifySend(const Send& send);
  absl::Status RefreshDepth();

  const Options options_;
  std::mutex mu_;  // guards db_
  sqlite3* db_;
  std::mutex queue_mu_;  // guards queue_, stopping_
  std::condition_variable queue_cv_;
  std::deque<PendingAdd> queue_;
  bool stopping_ = false;
  std::thread writer_;
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> sends_{0};
  std::atomic<size_t> depth_{0};
  std::mutex listeners_mu_;
  int next_listener_ = 1;
  std::map<int, std::shared_ptr<Listener>> listeners_;
};

}  // namespace mailpool::outbox

#endif  // MAILPOOL_OUTBOX_OUTBOX_H_
