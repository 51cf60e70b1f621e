#include "outbox/outbox.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace mailpool::outbox {
namespace {

// The database's name for v1::SEND_STATE_PENDING: an attempt is running.
constexpr int kSending = v1::SEND_STATE_PENDING;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS sends(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  send_id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  match_key TEXT NOT NULL,
  session_id TEXT NOT NULL,
  idempotency_key TEXT,
  request_hash TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_us INTEGER NOT NULL DEFAULT 0,
  create_us INTEGER NOT NULL,
  update_us INTEGER NOT NULL,
  data_in_flight INTEGER NOT NULL DEFAULT 0,
  possibly_sent INTEGER NOT NULL DEFAULT 0,
  envelope BLOB NOT NULL,
  require_all INTEGER NOT NULL DEFAULT 0,
  message_id TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT '',
  server_reply TEXT NOT NULL DEFAULT '',
  recipients BLOB NOT NULL DEFAULT x''
);
CREATE UNIQUE INDEX IF NOT EXISTS sends_idempotency ON sends(owner, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sends_queue ON sends(match_key, state, seq);
CREATE INDEX IF NOT EXISTS sends_owner ON sends(owner, seq);
CREATE TABLE IF NOT EXISTS sources(
  send_id TEXT PRIMARY KEY,
  bytes BLOB NOT NULL
);
)sql";

constexpr char kColumns[] =
    "seq, send_id, owner, match_key, session_id, state, attempts, next_attempt_us, create_us, "
    "update_us, data_in_flight, possibly_sent, envelope, require_all, message_id, subject, size, "
    "detail, server_reply, recipients";

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

void SetTime(int64_t us, google::protobuf::Timestamp* ts) {
  ts->set_seconds(us / 1000000);
  ts->set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
}

bool IsFinal(int state) {
  return state == v1::SEND_STATE_SENT || state == v1::SEND_STATE_ERROR ||
         state == v1::SEND_STATE_CANCELLED;
}

// One prepared statement, finalized when it goes out of scope.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, int64_t v) {
    if (ok()) rc_ = sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, absl::string_view v) {
    if (ok())
      rc_ = sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    return *this;
  }
  Stmt& BindBlob(int i, absl::string_view v) {
    if (ok()) rc_ = sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) {
    if (ok()) rc_ = sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() {
    if (!ok()) return rc_;
    rc_ = sqlite3_step(stmt_);
    return rc_;
  }
  absl::Status Run() {
    int rc = Step();
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return absl::OkStatus();
    return Error();
  }
  absl::Status Error() const {
    return ReasonError(absl::StatusCode::kInternal, "OUTBOX_DATABASE",
                       absl::StrCat("outbox database: ", sqlite3_errmsg(db_)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  bool ok() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW; }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

Outbox::Send ReadSend(const Stmt& s) {
  Outbox::Send send;
  send.seq = s.Int(0);
  v1::SendStatus& st = send.status;
  st.set_send_id(s.Text(1));
  send.owner = s.Text(2);
  send.match_key = s.Text(3);
  st.set_session_id(s.Text(4));
  st.set_state(static_cast<v1::SendState>(s.Int(5)));
  st.set_attempts(static_cast<uint32_t>(s.Int(6)));
  if (st.state() == v1::SEND_STATE_QUEUED) SetTime(s.Int(7), st.mutable_next_attempt_time());
  SetTime(s.Int(8), st.mutable_create_time());
  SetTime(s.Int(9), st.mutable_update_time());
  send.data_in_flight = s.Int(10) != 0;
  st.set_possibly_sent_before_crash(s.Int(11) != 0);
  send.envelope.ParseFromString(s.Text(12));
  send.require_all_recipients = s.Int(13) != 0;
  st.set_message_id(s.Text(14));
  st.set_subject(s.Text(15));
  st.set_size(static_cast<uint64_t>(s.Int(16)));
  st.set_detail(s.Text(17));
  st.set_server_reply(s.Text(18));
  v1::SendStatus recipients;
  if (recipients.ParseFromString(s.Text(19))) *st.mutable_recipients() = recipients.recipients();
  return send;
}

absl::Status MakeDirs(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::UnavailableError(absl::StrCat("cannot create ", part));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultPath() {
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && *state == '/') {
    return absl::StrCat(state, "/mailpool/outbox.db");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return absl::StrCat(home, "/.local/state/mailpool/outbox.db");
  }
  return "mailpool-outbox.db";
}

absl::StatusOr<std::unique_ptr<Outbox>> Outbox::Open(const std::string& path, Options options) {
  if (options.max_batch < 1) return absl::InvalidArgumentError("outbox max_batch must be >= 1");
  if (absl::Status s = MakeDirs(path); !s.ok()) return s;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open the outbox ", path, ": ", why));
  }
  std::unique_ptr<Outbox> box(new Outbox(db, options));
  // WAL: readers never block the writer; synchronous=FULL: a commit is fsynced before it
  // returns, so a QUEUED answer means the message survives a crash or power loss.
  // busy_timeout: a second daemon on the same file waits instead of failing at once.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          "PRAGMA busy_timeout=5000", "PRAGMA foreign_keys=ON", kSchema}) {
    if (absl::Status s = box->Exec(sql); !s.ok()) return s;
  }
  {
    std::lock_guard<std::mutex> lock(box->mu_);
    Stmt purge(db, "DELETE FROM sends WHERE state IN (3, 4, 5) AND update_us < ?1");
    if (absl::Status s = purge.Bind(1, Micros(absl::Now() - kKeepFinished)).Run(); !s.ok()) {
      return s;
    }
    Stmt orphans(db, "DELETE FROM sources WHERE send_id NOT IN (SELECT send_id FROM sends)");
    if (absl::Status s = orphans.Run(); !s.ok()) return s;
  }
  if (absl::StatusOr<int> n = box->Recover(); !n.ok()) return n.status();
  box->writer_ = std::thread([b = box.get()] { b->WriterLoop(); });
  return box;
}

Outbox::Outbox(sqlite3* db, Options options) : options_(options), db_(db) {}

Outbox::~Outbox() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
    queue_cv_.notify_one();
  }
  if (writer_.joinable()) writer_.join();
  sqlite3_close(db_);
}

absl::Status Outbox::Exec(const char* sql) {
  std::lock_guard<std::mutex> lock(mu_);
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error ? error : "unknown error";
    sqlite3_free(error);
    return ReasonError(absl::StatusCode::kInternal, "OUTBOX_DATABASE",
                       absl::StrCat("outbox database: ", why));
  }
  return absl::OkStatus();
}

absl::Status Outbox::RefreshDepth() {
  Stmt count(db_, "SELECT COUNT(*) FROM sends WHERE state IN (1, 2)");
  if (count.Step() != SQLITE_ROW) return count.Error();
  depth_.store(static_cast<size_t>(count.Int(0)), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<Outbox::Added> Outbox::Add(NewSend send) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  absl::StatusOr<Added> result;
  AddAsync(std::move(send), [&](absl::StatusOr<Added> added) {
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(added);
    ready = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return ready; });
  return result;
}

void Outbox::AddAsync(NewSend send, AddDone done) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(PendingAdd{std::move(send), std::move(done)});
      queue_cv_.notify_one();
      return;
    }
  }
  done(absl::UnavailableError("the outbox is closing"));
}

void Outbox::WriterLoop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  while (true) {
    queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything committed
    // Whatever arrived while the previous batch was being committed goes in this one: no
    // waiting for more, so a lone caller pays one fsync, as before.
    std::vector<PendingAdd> batch;
    size_t n = std::min(queue_.size(), static_cast<size_t>(options_.max_batch));
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    CommitBatch(batch);
    lock.lock();
  }
}

void Outbox::CommitBatch(std::vector<PendingAdd>& batch) {
  std::vector<absl::StatusOr<Added>> results(batch.size());
  std::vector<Send> added;  // the new rows, for the listeners
  {
    std::lock_guard<std::mutex> lock(mu_);
    // One transaction, one fsync, for the whole batch; each send in a savepoint of its own
    // so that one failing send does not take the others down.
    absl::Status status = Stmt(db_, "BEGIN IMMEDIATE").Run();
    std::vector<bool> inserted(batch.size(), false);
    size_t count = 0;
    for (size_t i = 0; status.ok() && i < batch.size(); ++i) {
      if (absl::Status s = Stmt(db_, "SAVEPOINT one_send").Run(); !s.ok()) {
        status = s;
        break;
      }
      bool is_new = false;
      results[i] = AddLocked(batch[i].send, &is_new);
      if (!results[i].ok()) Stmt(db_, "ROLLBACK TO one_send").Step();
      if (absl::Status s = Stmt(db_, "RELEASE one_send").Run(); !s.ok()) {
        status = s;
        break;
      }
      inserted[i] = results[i].ok() && is_new;
      if (inserted[i]) ++count;
    }
    if (status.ok()) status = Stmt(db_, "COMMIT").Run();
    if (!status.ok()) {
      // Nothing of the batch is on disk: every send fails.
      Stmt(db_, "ROLLBACK").Step();
      for (auto& r : results) r = status;
    } else {
      depth_.fetch_add(count, std::memory_order_relaxed);
      commits_.fetch_add(1, std::memory_order_relaxed);
      sends_.fetch_add(batch.size(), std::memory_order_relaxed);
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!inserted[i]) continue;
        absl::StatusOr<Send> stored = GetLocked(batch[i].send.send_id);
        if (!stored.ok()) continue;  // committed; only the echo of it failed
        results[i]->status = stored->status;
        added.push_back(*std::move(stored));
      }
    }
  }
  for (const Send& send : added) NotifySend(send);
  for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

absl::StatusOr<Outbox::Added> Outbox::AddLocked(const NewSend& send, bool* inserted) {
  Added added;
  int64_t now = Micros(absl::Now());
  if (!send.idempotency_key.empty()) {
    std::string id, hash;
    int64_t created = 0;
    {
      Stmt find(db_,
                "SELECT send_id, request_hash, create_us FROM sends "
                "WHERE owner = ?1 AND idempotency_key = ?2");
      find.Bind(1, send.owner).Bind(2, send.idempotency_key);
      if (find.Step() == SQLITE_ROW) {
        id = find.Text(0);
        hash = find.Text(1);
        created = find.Int(2);
      }
    }
    if (!id.empty()) {
      if (created >= now - absl::ToInt64Microseconds(kIdempotencyWindow)) {
        if (hash != send.request_hash) {
          return ReasonError(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED",
                             "idempotency_key was used for a different request");
        }
        absl::StatusOr<Send> earlier = GetLocked(id);
        if (!earlier.ok()) return earlier.status();
        added.status = std::move(earlier->status);
        added.existing = true;
        return added;
      }
      // Older than the window: the key is free again.
      Stmt release(db_, "UPDATE sends SET idempotency_key = NULL WHERE send_id = ?1");
      MP_RETURN_IF_ERROR(release.Bind(1, id).Run());
    }
  }
  Stmt insert(db_,
              "INSERT INTO sends(send_id, owner, match_key, session_id, idempotency_key, "
              "request_hash, state, next_attempt_us, create_us, update_us, envelope, "
              "require_all, message_id, subject, size) "
              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?7, ?8, ?9, ?10, ?11, ?12)");
  insert.Bind(1, send.send_id).Bind(2, send.owner).Bind(3, send.match_key).Bind(4, send.session_id);
  if (send.idempotency_key.empty()) {
    insert.BindNull(5);
  } else {
    insert.Bind(5, send.idempotency_key);
  }
  insert.Bind(6, send.request_hash)
      .Bind(7, now)
      .BindBlob(8, send.envelope.SerializeAsString())
      .Bind(9, send.require_all_recipients ? 1 : 0)
      .Bind(10, send.message_id)
      .Bind(11, send.subject)
      .Bind(12, static_cast<int64_t>(send.source.size()));
  MP_RETURN_IF_ERROR(insert.Run());
  Stmt bytes(db_, "INSERT INTO sources(send_id, bytes) VALUES(?1, ?2)");
  MP_RETURN_IF_ERROR(bytes.Bind(1, send.send_id).BindBlob(2, send.source).Run());
  // The status as it will be stored (the caller re-reads it after the commit).
  added.status.set_send_id(send.send_id);
  added.status.set_session_id(send.session_id);
  added.status.set_state(v1::SEND_STATE_QUEUED);
  added.status.set_message_id(send.message_id);
  added.status.set_subject(send.subject);
  added.status.set_size(send.source.size());
  *inserted = true;
  return added;
}

absl::StatusOr<Outbox::Send> Outbox::GetLocked(const std::string& send_id) {
  Stmt get(db_, absl::StrCat("SELECT ", kColumns, " FROM sends WHERE send_id = ?1").c_str());
  get.Bind(1, send_id);
  int rc = get.Step();
  if (rc == SQLITE_ROW) return ReadSend(get);
  if (rc == SQLITE_DONE) {
    return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                       absl::StrCat("no send ", send_id));
  }
  return get.Error();
}

absl::StatusOr<Outbox::Send> Outbox::Get(const std::string& owner, const std::string& send_id) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Send> send = GetLocked(send_id);
  // Another owner's send is NOT_FOUND, exactly like an unknown one.
  if (send.ok() && send->owner != owner) {
    return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                       absl::StrCat("no send ", send_id));
  }
  return send;
}

absl::StatusOr<std::vector<Outbox::Send>> Outbox::List(const ListQuery& query, bool* more) {
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM sends WHERE owner = ?1 AND seq > ?2");
  if (!query.session_id.empty()) absl::StrAppend(&sql, " AND session_id = ?3");
  if (!query.states.empty()) {
    // The states are enum values checked by the caller: safe to put in the text.
    std::vector<int> states(query.states.begin(), query.states.end());
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(states, ","), ")");
  }
  absl::StrAppend(&sql, " ORDER BY seq LIMIT ?4");
  std::lock_guard<std::mutex> lock(mu_);
  Stmt list(db_, sql.c_str());
  list.Bind(1, query.owner).Bind(2, query.after_seq);
  if (!query.session_id.empty()) list.Bind(3, query.session_id);
  list.Bind(4, query.limit + 1);
  std::vector<Send> out;
  int rc;
  while ((rc = list.Step()) == SQLITE_ROW) out.push_back(ReadSend(list));
  if (rc != SQLITE_DONE) return list.Error();
  *more = out.size() > static_cast<size_t>(query.limit);
  if (*more) out.pop_back();
  return out;
}

absl::StatusOr<Outbox::Send> Outbox::NextPending(const std::string& match_key) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt next(db_, absl::StrCat("SELECT ", kColumns,
                              " FROM sends WHERE match_key = ?1 AND state = 1 ORDER BY seq LIMIT 1")
                     .c_str());
  next.Bind(1, match_key);
  int rc = next.Step();
  if (rc == SQLITE_ROW) return ReadSend(next);
  if (rc == SQLITE_DONE) return absl::NotFoundError("nothing pending");
  return next.Error();
}

absl::StatusOr<std::vector<std::string>> Outbox::PendingKeys() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt keys(db_, "SELECT DISTINCT match_key FROM sends WHERE state = 1");
  std::vector<std::string> out;
  int rc;
  while ((rc = keys.Step()) == SQLITE_ROW) out.push_back(keys.Text(0));
  if (rc != SQLITE_DONE) return keys.Error();
  return out;
}

absl::StatusOr<std::string> Outbox::Source(const std::string& send_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt get(db_, "SELECT bytes FROM sources WHERE send_id = ?1");
  get.Bind(1, send_id);
  int rc = get.Step();
  if (rc == SQLITE_ROW) return get.Text(0);
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("no message bytes for ", send_id));
  return get.Error();
}

absl::Status Outbox::MarkSending(const std::string& send_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt mark(db_,
              "UPDATE sends SET state = 2, attempts = attempts + 1, data_in_flight = 0, "
              "update_us = ?2 WHERE send_id = ?1 AND state = 1");
    if (absl::Status s = mark.Bind(1, send_id).Bind(2, Micros(absl::Now())).Run(); !s.ok()) {
      return s;
    }
    if (sqlite3_changes(db_) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("send ", send_id, " is not queued"));
    }
  }
  Notify(send_id);
  return absl::OkStatus();
}

absl::Status Outbox::MarkDataInFlight(const std::string& send_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt mark(db_, "UPDATE sends SET data_in_flight = 1 WHERE send_id = ?1 AND state = 2");
  return mark.Bind(1, send_id).Run();
}

absl::Status Outbox::Finish(const std::string& send_id, Outcome outcome) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    v1::SendStatus recipients;
    for (v1::RecipientResult& r : outcome.recipients) *recipients.add_recipients() = std::move(r);
    Stmt begin(db_, "BEGIN IMMEDIATE");
    if (absl::Status s = begin.Run(); !s.ok()) return s;
    // A retry after the data went out may repeat a delivery: say so.
    Stmt update(db_,
                "UPDATE sends SET state = ?2, detail = ?3, server_reply = ?4, recipients = ?5, "
                "next_attempt_us = ?6, update_us = ?7, "
                "possibly_sent = possibly_sent OR (data_in_flight AND ?8), "
                "data_in_flight = 0 WHERE send_id = ?1 AND state = 2");
    update.Bind(1, send_id)
        .Bind(2, static_cast<int64_t>(outcome.state))
        .Bind(3, outcome.detail)
        .Bind(4, outcome.server_reply)
        .BindBlob(5, recipients.SerializeAsString())
        .Bind(6, Micros(outcome.next_attempt_time))
        .Bind(7, Micros(absl::Now()))
        .Bind(8, outcome.interrupted ? 1 : 0);
    absl::Status s = update.Run();
    if (s.ok() && IsFinal(outcome.state)) {
      s = Stmt(db_, "DELETE FROM sources WHERE send_id = ?1").Bind(1, send_id).Run();
    }
    if (s.ok()) s = Stmt(db_, "COMMIT").Run();
    if (!s.ok()) {
      Stmt(db_, "ROLLBACK").Step();
      return s;
    }
    if (IsFinal(outcome.state)) depth_.fetch_sub(1, std::memory_order_relaxed);
  }
  Notify(send_id);
  return absl::OkStatus();
}

absl::StatusOr<Outbox::Send> Outbox::Cancel(const std::string& owner, const std::string& send_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<Send> send = GetLocked(send_id);
    if (!send.ok() || send->owner != owner) {
      return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                         absl::StrCat("no send ", send_id));
    }
    v1::SendState state = send->status.state();
    if (state == v1::SEND_STATE_CANCELLED) return send;
    if (state != v1::SEND_STATE_QUEUED) {
      return ReasonError(absl::StatusCode::kFailedPrecondition, "SEND_NOT_CANCELLABLE",
                         state == v1::SEND_STATE_PENDING
                             ? "the send is being transmitted to the server"
                             : "the send is already finished");
    }
    Stmt begin(db_, "BEGIN IMMEDIATE");
    if (absl::Status s = begin.Run(); !s.ok()) return s;
    Stmt update(db_,
                "UPDATE sends SET state = 5, detail = 'cancelled', update_us = ?2 "
                "WHERE send_id = ?1 AND state = 1");
    absl::Status s = update.Bind(1, send_id).Bind(2, Micros(absl::Now())).Run();
    if (s.ok()) s = Stmt(db_, "DELETE FROM sources WHERE send_id = ?1").Bind(1, send_id).Run();
    if (s.ok()) s = Stmt(db_, "COMMIT").Run();
    if (!s.ok()) {
      Stmt(db_, "ROLLBACK").Step();
      return s;
    }
    depth_.fetch_sub(1, std::memory_order_relaxed);
  }
  Notify(send_id);
  return Get(owner, send_id);
}

absl::StatusOr<int> Outbox::Recover() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt recover(db_,
               "UPDATE sends SET state = 1, next_attempt_us = ?1, update_us = ?1, "
               "possibly_sent = possibly_sent OR data_in_flight, data_in_flight = 0, "
               "detail = CASE WHEN data_in_flight THEN "
               "'possibly sent before a crash: the daemon stopped while the message data was "
               "in flight; sending it again' ELSE 'the daemon stopped during an attempt; "
               "the message was not sent; sending it again' END "
               "WHERE state = 2");
  if (absl::Status s = recover.Bind(1, Micros(absl::Now())).Run(); !s.ok()) return s;
  int changed = sqlite3_changes(db_);
  if (absl::Status s = RefreshDepth(); !s.ok()) return s;
  return changed;
}

int Outbox::AddListener(Listener listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  int handle = next_listener_++;
  listeners_[handle] = std::make_shared<Listener>(std::move(listener));
  return handle;
}

void Outbox::RemoveListener(int handle) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(handle);
}

void Outbox::Notify(const std::string& send_id) {
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    if (listeners_.empty()) return;
  }
  absl::StatusOr<Send> send;
  {
    std::lock_guard<std::mutex> lock(mu_);
    send = GetLocked(send_id);
  }
  if (send.ok()) NotifySend(*send);
}

void Outbox::NotifySend(const Send& send) {
  std::vector<std::shared_ptr<Listener>> listeners;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    if (listeners_.empty()) return;
    for (auto& [handle, l] : listeners_) listeners.push_back(l);
  }
  for (auto& l : listeners) (*l)(send);
}

}  // namespace mailpool::outbox
