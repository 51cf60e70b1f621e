// Outbox over a real SQLite file in a temporary directory: queueing, idempotency keys,
// state changes, what a crash leaves behind (reopening the file), cancel, listing.
#include "outbox/outbox.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::outbox {
namespace {

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mailpool-outbox-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/sub/outbox.db";  // the directory is created on demand
    Reopen();
  }
  void TearDown() override {
    box_.reset();
    for (const char* s : {"/sub/outbox.db", "/sub/outbox.db-wal", "/sub/outbox.db-shm"}) {
      unlink((dir_ + s).c_str());
    }
    rmdir((dir_ + "/sub").c_str());
    rmdir(dir_.c_str());
  }
  // Closes and opens the file again, as a restarted daemon does.
  void Reopen(Outbox::Options options = {}) {
    box_.reset();
    absl::StatusOr<std::unique_ptr<Outbox>> box = Outbox::Open(path_, options);
    ASSERT_TRUE(box.ok()) << box.status();
    box_ = std::move(*box);
  }
  Outbox::NewSend Make(const std::string& id, const std::string& key = "") {
    Outbox::NewSend s;
    s.send_id = id;
    s.owner = "local";
    s.match_key = "local\nhost:25\nalice";
    s.session_id = "ms0_session";
    s.idempotency_key = key;
    s.request_hash = "h1";
    s.envelope.set_mail_from("alice@example.test");
    s.envelope.add_rcpt_to("bob@example.test");
    s.message_id = absl::StrCat(id, "@example.test");
    s.subject = "hello";
    s.source = absl::StrCat("Subject: hello\r\n\r\nbody of ", id, "\r\n");
    return s;
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<Outbox> box_;
};

TEST_F(OutboxTest, AddStoresTheSendAndItsBytesInOrder) {
  ASSERT_TRUE(box_->Add(Make("s1")).ok());
  absl::StatusOr<Outbox::Added> added = box_->Add(Make("s2"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_FALSE(added->existing);
  EXPECT_EQ(added->status.state(), v1::SEND_STATE_QUEUED);
  EXPECT_EQ(added->status.message_id(), "s2@example.test");
  EXPECT_EQ(box_->Depth(), 2u);
  Reopen();  // durable
  EXPECT_EQ(box_->Depth(), 2u);
  absl::StatusOr<Outbox::Send> next = box_->NextPending("local\nhost:25\nalice");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status.send_id(), "s1");
  EXPECT_EQ(next->envelope.rcpt_to(0), "bob@example.test");
  EXPECT_EQ(*box_->Source("s1"), "Subject: hello\r\n\r\nbody of s1\r\n");
  EXPECT_TRUE(absl::IsNotFound(box_->NextPending("other").status()));
  EXPECT_THAT(*box_->PendingKeys(), ::testing::ElementsAre("local\nhost:25\nalice"));
}

TEST_F(OutboxTest, IdempotencyKeyReturnsTheFirstSendAndRefusesADifferentRequest) {
  absl::StatusOr<Outbox::Added> first = box_->Add(Make("s1", "key-1"));
  ASSERT_TRUE(first.ok());
  absl::StatusOr<Outbox::Added> again = box_->Add(Make("s2", "key-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(again->status.send_id(), "s1");
  EXPECT_EQ(box_->Depth(), 1u);
  Outbox::NewSend different = Make("s3", "key-1");
  different.request_hash = "h2";
  EXPECT_EQ(box_->Add(different).status().code(), absl::StatusCode::kAlreadyExists);
  // Another owner's key is its own.
  Outbox::NewSend other = Make("s4", "key-1");
  other.owner = "someone";
  EXPECT_FALSE(box_->Add(other)->existing);
  EXPECT_TRUE(absl::IsNotFound(box_->Get("local", "s4").status()));
}

TEST_F(OutboxTest, AttemptOutcomes) {
  ASSERT_TRUE(box_->Add(Make("s1")).ok());
  ASSERT_TRUE(box_->MarkSending("s1").ok());
  EXPECT_EQ(box_->Get("local", "s1")->status.state(), v1::SEND_STATE_PENDING);
  EXPECT_EQ(box_->Get("local", "s1")->status.attempts(), 1u);
  // A PENDING send is not picked again nor cancelled.
  EXPECT_TRUE(absl::IsNotFound(box_->NextPending("local\nhost:25\nalice").status()));
  EXPECT_EQ(box_->Cancel("local", "s1").status().code(), absl::StatusCode::kFailedPrecondition);
  // A temporary failure before the data: QUEUED again, not possibly sent.
  Outbox::Outcome retry;
  retry.state = v1::SEND_STATE_QUEUED;
  retry.detail = "451 try later";
  retry.interrupted = true;
  retry.next_attempt_time = absl::Now() + absl::Seconds(30);
  ASSERT_TRUE(box_->Finish("s1", retry).ok());
  Outbox::Send s = *box_->Get("local", "s1");
  EXPECT_EQ(s.status.state(), v1::SEND_STATE_QUEUED);
  EXPECT_FALSE(s.status.possibly_sent_before_crash());
  EXPECT_GT(s.status.next_attempt_time().seconds(), absl::ToUnixSeconds(absl::Now()));
  // Second attempt: the data goes out, then the connection drops: possibly sent.
  ASSERT_TRUE(box_->MarkSending("s1").ok());
  ASSERT_TRUE(box_->MarkDataInFlight("s1").ok());
  ASSERT_TRUE(box_->Finish("s1", retry).ok());
  EXPECT_TRUE(box_->Get("local", "s1")->status.possibly_sent_before_crash());
  // Third: sent. The bytes are dropped, the depth falls.
  ASSERT_TRUE(box_->MarkSending("s1").ok());
  Outbox::Outcome sent;
  sent.state = v1::SEND_STATE_SENT;
  sent.server_reply = "250 2.0.0 Ok: queued as X";
  v1::RecipientResult r;
  r.set_address("bob@example.test");
  r.set_accepted(true);
  r.set_reply_code(250);
  sent.recipients.push_back(r);
  ASSERT_TRUE(box_->Finish("s1", sent).ok());
  s = *box_->Get("local", "s1");
  EXPECT_EQ(s.status.state(), v1::SEND_STATE_SENT);
  EXPECT_EQ(s.status.attempts(), 3u);
  EXPECT_EQ(s.status.server_reply(), "250 2.0.0 Ok: queued as X");
  ASSERT_EQ(s.status.recipients_size(), 1);
  EXPECT_EQ(s.status.recipients(0).reply_code(), 250u);
  EXPECT_FALSE(s.status.has_next_attempt_time());
  EXPECT_TRUE(absl::IsNotFound(box_->Source("s1").status()));
  EXPECT_EQ(box_->Depth(), 0u);
  EXPECT_EQ(box_->Cancel("local", "s1").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(OutboxTest, ACrashLeavesNothingSendingAndMarksDataInFlightAsPossiblySent) {
  for (const char* id : {"before-data", "data-out", "waiting"})
    ASSERT_TRUE(box_->Add(Make(id)).ok());
  ASSERT_TRUE(box_->MarkSending("before-data").ok());
  ASSERT_TRUE(box_->MarkSending("data-out").ok());
  ASSERT_TRUE(box_->MarkDataInFlight("data-out").ok());
  Reopen();  // as after kill -9: Open() recovers
  Outbox::Send a = *box_->Get("local", "before-data");
  Outbox::Send b = *box_->Get("local", "data-out");
  EXPECT_EQ(a.status.state(), v1::SEND_STATE_QUEUED);
  EXPECT_FALSE(a.status.possibly_sent_before_crash());
  EXPECT_EQ(b.status.state(), v1::SEND_STATE_QUEUED);
  EXPECT_TRUE(b.status.possibly_sent_before_crash());
  EXPECT_THAT(b.status.detail(), ::testing::HasSubstr("possibly sent before a crash"));
  EXPECT_EQ(box_->Get("local", "waiting")->status.attempts(), 0u);
  EXPECT_EQ(box_->Depth(), 3u);
  EXPECT_EQ(*box_->Source("data-out"), "Subject: hello\r\n\r\nbody of data-out\r\n");
}

TEST_F(OutboxTest, CancelAndList) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(box_->Add(Make(absl::StrCat("s", i))).ok());
  absl::StatusOr<Outbox::Send> cancelled = box_->Cancel("local", "s2");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status.state(), v1::SEND_STATE_CANCELLED);
  EXPECT_TRUE(box_->Cancel("local", "s2").ok());  // cancelling again succeeds
  EXPECT_TRUE(absl::IsNotFound(box_->Cancel("local", "nope").status()));
  EXPECT_TRUE(absl::IsNotFound(box_->Cancel("someone", "s1").status()));
  EXPECT_EQ(box_->Depth(), 4u);

  Outbox::ListQuery query;
  query.owner = "local";
  query.limit = 2;
  bool more = false;
  std::vector<std::string> ids;
  do {
    absl::StatusOr<std::vector<Outbox::Send>> page = box_->List(query, &more);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& s : *page) ids.push_back(s.status.send_id());
    if (!page->empty()) query.after_seq = page->back().seq;
  } while (more);
  EXPECT_THAT(ids, ::testing::ElementsAre("s0", "s1", "s2", "s3", "s4"));

  query.after_seq = 0;
  query.limit = 100;
  query.states = {v1::SEND_STATE_CANCELLED};
  absl::StatusOr<std::vector<Outbox::Send>> cancelled_only = box_->List(query, &more);
  ASSERT_EQ(cancelled_only->size(), 1u);
  EXPECT_EQ((*cancelled_only)[0].status.send_id(), "s2");
  EXPECT_FALSE(more);
  query.states = {};
  query.session_id = "ms0_other";
  EXPECT_TRUE(box_->List(query, &more)->empty());
}

TEST_F(OutboxTest, ListenersHearEveryCommittedChange) {
  std::vector<v1::SendState> heard;
  int handle = box_->AddListener([&](const Outbox::Send& s) { heard.push_back(s.status.state()); });
  ASSERT_TRUE(box_->Add(Make("s1")).ok());
  ASSERT_TRUE(box_->MarkSending("s1").ok());
  Outbox::Outcome error;
  error.state = v1::SEND_STATE_ERROR;
  ASSERT_TRUE(box_->Finish("s1", error).ok());
  box_->RemoveListener(handle);
  ASSERT_TRUE(box_->Add(Make("s2")).ok());
  EXPECT_THAT(heard, ::testing::ElementsAre(v1::SEND_STATE_QUEUED, v1::SEND_STATE_PENDING,
                                            v1::SEND_STATE_ERROR));
}

// Group commit. Rows another connection sees: what is committed to the file.
int CommittedRows(const std::string& path, const std::string& send_id) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return -1;
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT (SELECT COUNT(*) FROM sends WHERE send_id = ?1) + "
                     "(SELECT COUNT(*) FROM sources WHERE send_id = ?1)",
                     -1, &stmt, nullptr);
  sqlite3_bind_text(stmt, 1, send_id.c_str(), -1, SQLITE_TRANSIENT);
  int n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST_F(OutboxTest, AddAsyncAnswersOnlyOnceTheSendAndItsBytesAreCommitted) {
  std::atomic<int> seen_committed{0};
  std::atomic<int> answered{0};
  constexpr int kSends = 50;
  for (int i = 0; i < kSends; ++i) {
    std::string id = absl::StrCat("a", i);
    box_->AddAsync(Make(id), [&, id](absl::StatusOr<Outbox::Added> added) {
      EXPECT_TRUE(added.ok()) << added.status();
      if (added.ok()) EXPECT_EQ(added->status.send_id(), id);
      // Another connection to the file sees both rows when the answer comes.
      if (CommittedRows(path_, id) == 2) ++seen_committed;
      ++answered;
    });
  }
  box_.reset();  // the writer commits what is waiting and answers it before closing
  EXPECT_EQ(answered.load(), kSends);
  EXPECT_EQ(seen_committed.load(), kSends);
  Reopen();
  EXPECT_EQ(box_->Depth(), static_cast<size_t>(kSends));
}

TEST_F(OutboxTest, ConcurrentAddsAllLandAndAFailingSendFailsAlone) {
  constexpr int kThreads = 16, kPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!box_->Add(Make(absl::StrCat("t", t, "-", i), absl::StrCat("k", t, "-", i))).ok()) {
          ++failures;
        }
        // A send ID used already (a UNIQUE violation) inside whatever batch it falls in;
        // and a reused idempotency key with another request.
        if (box_->Add(Make(absl::StrCat("t", t, "-", i))).ok()) ++failures;
        Outbox::NewSend other = Make(absl::StrCat("u", t, "-", i), absl::StrCat("k", t, "-", i));
        other.request_hash = "h2";
        absl::StatusOr<Outbox::Added> reused = box_->Add(std::move(other));
        if (reused.status().code() != absl::StatusCode::kAlreadyExists) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(box_->Depth(), static_cast<size_t>(kThreads * kPerThread));
  Outbox::WriterStats stats = box_->Stats();
  EXPECT_EQ(stats.sends, static_cast<uint64_t>(3 * kThreads * kPerThread));
  EXPECT_LE(stats.commits, stats.sends);
  Reopen();
  EXPECT_EQ(box_->Depth(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(*box_->Source(absl::StrCat("t", t, "-0")),
              absl::StrCat("Subject: hello\r\n\r\nbody of t", t, "-0\r\n"));
    EXPECT_FALSE(box_->Source(absl::StrCat("u", t, "-0")).ok());
  }
}

TEST_F(OutboxTest, BatchOfOneCommitsEachSendAlone) {
  Reopen({.max_batch = 1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) EXPECT_TRUE(box_->Add(Make(absl::StrCat("b", t, "-", i))).ok());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(box_->Stats().commits, 40u);
  EXPECT_EQ(box_->Stats().sends, 40u);
  EXPECT_FALSE(Outbox::Open(path_ + "-other", {.max_batch = 0}).ok());
}

}  // namespace
}  // namespace mailpool::outbox
