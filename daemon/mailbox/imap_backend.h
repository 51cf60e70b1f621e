// The IMAP mailbox (RFC 3501 and extensions) behind MailboxService, for `imap` sessions.
//
//   mailbox::ImapBackend imap(loop, pool);
//   // on the loop, after the service has validated the request:
//   imap.ListMessages({owner, session_id}, request, [](auto r) { ... });
//
// How it maps the API onto one IMAP connection:
//  - Current folder: INBOX or the session's initial folder until SelectFolder; the link
//    re-selects it after a reconnect and GetSession shows it. A call naming another folder
//    selects that one for the call (EXAMINE when it only reads) and the current one is
//    selected again by the next call that needs it.
//  - Message IDs embed folder, UIDVALIDITY and UID (imap_support.h). Before a command uses
//    an ID, the folder's UIDVALIDITY is compared: a mismatch is FAILED_PRECONDITION
//    UIDVALIDITY_CHANGED, a folder that no longer exists FAILED_PRECONDITION
//    FOLDER_GONE; a missing UID is NOT_FOUND. An ID never addresses another message.
//  - Listing: UID SEARCH ALL (or UNSEEN) gives the folder's UIDs; a page token holds the
//    last UID served and the UIDVALIDITY, so arrivals and expunges between pages neither
//    repeat nor skip messages. Pages are fetched with one UID FETCH (HEADERS: FLAGS,
//    RFC822.SIZE, INTERNALDATE, BODYSTRUCTURE, BODY.PEEK[HEADER]). Reading uses BODY.PEEK
//    (never sets \Seen) unless mark_seen asks for it (then UID STORE +FLAGS.SILENT).
//  - Fairness: the session's commands take turns in one FIFO on its single connection
//    (one command in flight). StreamMessage fetches in partial windows
//    (BODY.PEEK[]<offset.window>, 1 MiB by default), each window one turn, so a long
//    download never holds the connection for more than one window while other calls wait;
//    the next window is asked only once the caller has room for it.
//  - WatchMailbox: IDLE on the current folder whenever no other command waits (DONE
//    leaves it for them), re-issued every 25 minutes (or sooner under a short server
//    timeout); NOOP polling where IDLE is missing. New messages are fetched after EXISTS,
//    expunges and flag changes come from the server's untagged responses (UIDs known from
//    a baseline UID FETCH), and a re-selection of the folder is followed by a resync
//    that reports what changed meanwhile.
//
// Loop-confined (see backend.h): every call, and every callback it makes, runs on the
// pool's event loop. May include mailbox/, pool/, session/, imap/, mime/, net/ (timers) and
// common/; no grpcpp. The implementation is split by purpose (backend: the turns on the
// link; fill: reading; folders; changes; watch: MailboxWatcher), see imap_internal.h.
#ifndef MAILPOOL_MAILBOX_IMAP_BACKEND_H_
#define MAILPOOL_MAILBOX_IMAP_BACKEND_H_

#include <memory>

#include "absl/time/time.h"
#include "mailbox/backend.h"
#include "net/event_loop.h"
#include "pool/pool.h"

namespace mailpool::mailbox {

struct ImapBackendOptions {
  // Largest message (or page of messages) GetMessage/ListMessages/SearchMessages (FULL,
  // RAW) and GetAttachment read into memory; more is RESOURCE_EXHAUSTED (use
  // StreamMessage).
  uint64_t max_message_bytes = 64ull << 20;
  // Bytes per partial FETCH of StreamMessage.
  uint32_t stream_window = 1 << 20;
  // Saved search results per session (the oldest is dropped), and their lifetime.
  size_t max_saved_searches = 16;
  absl::Duration search_lifetime = absl::Minutes(10);
  // IDLE is left and re-issued at least this often (RFC 2177: servers may log out after
  // 30 minutes of IDLE).
  absl::Duration idle_reissue = absl::Minutes(25);
};

class ImapBackend final : public Backend {
 public:
  ImapBackend(net::EventLoop& loop, pool::Pool& pool,
              ImapBackendOptions options = ImapBackendOptions());
  ~ImapBackend() override;

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

#endif  // MAILPOOL_MAILBOX_IMAP_BACKEND_H_
