// The POP3 mailbox (RFC 1939) behind MailboxService, for `pop3` sessions and the POP3
// side of legacy `pop3_smtp` sessions.
//
// POP3's rules, made explicit:
//  - The maildrop is a snapshot taken at login: LIST and UIDL are read once per snapshot
//    (on first use) and every call works on that snapshot until Refresh, which QUITs
//    (committing deletions) and logs in again on a new connection.
//  - DeleteMessages sends DELE: the messages vanish from this session at once, and from
//    the server at the next QUIT (CloseSession or Refresh).
//  - Message IDs are "p1.<account>.<base64url(UIDL)>", stable across snapshots and
//    sessions of the same account; on a server without UIDL they are
//    "p0.<account>.<snapshot>.<number>.<size>", valid only in their snapshot and checked
//    (number and size) before use. A stale ID is NOT_FOUND, an ID of another account
//    FAILED_PRECONDITION; neither ever addresses another message.
//  - There are no flags: `seen` is this session's record of the messages it read (FULL or
//    RAW views, StreamMessage; not GetAttachment or body searches). The "unread" filter
//    and criterion mean not yet read so (pop3_calls.cc); other flag searches and every
//    IMAP-only call are FAILED_PRECONDITION.
//  - Searches run in the daemon: headers with TOP n 0 (parsed once per session and
//    cached), bodies with RETR only when the criteria need them.
//
// Commands of concurrent calls on one session take turns on its single POP3 connection
// (a per-session FIFO). StreamMessage passes RETR data through in chunks and pauses
// reading from the server while the caller is slow (never holding the message whole).
//
// Loop-confined (see backend.h).
#ifndef MAILPOOL_MAILBOX_POP3_BACKEND_H_
#define MAILPOOL_MAILBOX_POP3_BACKEND_H_

#include <memory>

#include "mailbox/backend.h"
#include "pool/pool.h"

namespace mailpool::mailbox {

struct Pop3BackendOptions {
  // Largest message GetMessage (FULL, RAW), GetAttachment and body searches download
  // into memory; larger ones are RESOURCE_EXHAUSTED (use StreamMessage).
  uint64_t max_message_bytes = 64ull << 20;
  // Parsed header blocks kept per session (the cache is cleared when full).
  size_t max_cached_headers = 50'000;
  // Saved search results per session (the oldest is dropped), and their lifetime.
  size_t max_saved_searches = 16;
  absl::Duration search_lifetime = absl::Minutes(10);
};

class Pop3Backend final : public Backend {
 public:
  explicit Pop3Backend(pool::Pool& pool, Pop3BackendOptions options = Pop3BackendOptions());
  ~Pop3Backend() override;

  void GetMailboxStatus(const CallTarget& target, const v1::GetMailboxStatusRequest& request,
                        Reply<v1::GetMailboxStatusResponse> done) override;
  void ListMessages(const CallTarget& target, const v1::ListMessagesRequest& request,
                    Reply<v1::ListMessagesResponse> done) override;
  void GetMessage(const CallTarget& target, const v1::GetMessageRequest& request,
                  Reply<v1::GetMessageResponse> done) override;
  void StreamMessage(const CallTarget& target, const v1::StreamMessageRequest& request,
                     std::shared_ptr<ChunkSink> sink, Done done) override;
  void GetAttachment(const CallTarget& target, const v1::GetAttachmentRequest& request,
                     std::shared_ptr<ChunkSink> sink, Done done) override;
  void SearchMessages(const CallTarget& target, const v1::SearchMessagesRequest& request,
                      Reply<v1::SearchMessagesResponse> done) override;
  void DeleteMessages(const CallTarget& target, const v1::DeleteMessagesRequest& request,
                      Reply<v1::DeleteMessagesResponse> done) override;
  void Refresh(const CallTarget& target, const v1::RefreshRequest& request,
               Reply<v1::RefreshResponse> done) override;

  // IMAP-only calls: FAILED_PRECONDITION (POP3 has one folder, no flags, no push).
  void ListFolders(const CallTarget& target, const v1::ListFoldersRequest& request,
                   Reply<v1::ListFoldersResponse> done) override;
  void SelectFolder(const CallTarget& target, const v1::SelectFolderRequest& request,
                    Reply<v1::SelectFolderResponse> done) override;
  void CreateFolder(const CallTarget& target, const v1::CreateFolderRequest& request,
                    Reply<v1::CreateFolderResponse> done) override;
  void DeleteFolder(const CallTarget& target, const v1::DeleteFolderRequest& request,
                    Reply<v1::DeleteFolderResponse> done) override;
  void RenameFolder(const CallTarget& target, const v1::RenameFolderRequest& request,
                    Reply<v1::RenameFolderResponse> done) override;
  void CopyMessages(const CallTarget& target, const v1::CopyMessagesRequest& request,
                    Reply<v1::CopyMessagesResponse> done) override;
  void MoveMessages(const CallTarget& target, const v1::MoveMessagesRequest& request,
                    Reply<v1::MoveMessagesResponse> done) override;
  void UpdateFlags(const CallTarget& target, const v1::UpdateFlagsRequest& request,
                   Reply<v1::UpdateFlagsResponse> done) override;
  void AppendMessage(const CallTarget& target, const v1::AppendMessageRequest& request,
                     Reply<v1::AppendMessageResponse> done) override;
  void Expunge(const CallTarget& target, const v1::ExpungeRequest& request,
               Reply<v1::ExpungeResponse> done) override;
  void WatchMailbox(const CallTarget& target, const v1::WatchMailboxRequest& request,
                    std::shared_ptr<EventSink> sink, Done done) override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_POP3_BACKEND_H_
