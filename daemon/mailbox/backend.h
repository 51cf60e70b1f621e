// The seam between MailboxService (service/, gRPC) and the protocol-specific mailbox logic:
// one Backend per protocol family (Pop3Backend, ImapBackend), each running on the event
// loop over the sessions of the pool. The IMAP-only calls (folders, flags, copy/move,
// append, expunge, watch) answer FAILED_PRECONDITION on POP3.
//
//   mailbox::Pop3Backend pop3(pool);
//   // on the loop, after the service has validated the request:
//   pop3.GetMailboxStatus({owner, session_id}, request,
//                         [](absl::StatusOr<v1::GetMailboxStatusResponse> r) { ... });
//
// Every method runs on the loop and calls its `done` exactly once, on the loop — also when
// the session is closed or destroyed while the call runs (then UNAVAILABLE). Requests have
// been validated by the caller for shape (sizes, CR/LF/NUL); backends check what depends on
// the session (IDs, tokens, protocol capabilities).
#ifndef MAILPOOL_MAILBOX_BACKEND_H_
#define MAILPOOL_MAILBOX_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "common/call.h"
#include "mailpool/v1/mailbox.pb.h"

namespace mailpool::mailbox {

// Who calls and on which session (its ID, resolved from an ID or name by the caller).
struct CallTarget {
  std::string owner;
  std::string session;
  // The caller's gRPC call (deadline, cancellation); commands run for it stop with it.
  // Null: not bound to a call.
  std::shared_ptr<CallToken> call;
};

template <typename T>
using Reply = absl::AnyInvocable<void(absl::StatusOr<T>)>;
using Done = absl::AnyInvocable<void(absl::Status)>;

// Consumer of streamed content (StreamMessage, GetAttachment), implemented by the gRPC
// layer. Thread-safe: the backend calls it on the loop, the transport on its own threads.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Once, before any chunk: the size of the whole content and, for GetAttachment, the
  // part's metadata (null otherwise).
  virtual void Begin(uint64_t total_size, const v1::Attachment* attachment) = 0;
  // The next chunk (never empty) at `offset` in the content.
  virtual void Write(std::string data, uint64_t offset) = 0;
  // True while the consumer holds more than it wants: the producer stops reading from the
  // mail server and calls OnDrained.
  virtual bool Full() const = 0;
  // `resume` is posted to the loop once the consumer has room again (at once if it has).
  virtual void OnDrained(absl::AnyInvocable<void()> resume) = 0;
  // The consumer went away: the producer may drop the remaining data.
  virtual bool Cancelled() const = 0;
};

// Consumer of WatchMailbox events, implemented by the gRPC layer. Thread-safe like
// ChunkSink.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues one event for the caller (never blocks; the gRPC layer bounds its queue and
  // ends the stream with RESOURCE_EXHAUSTED when the caller stops reading).
  virtual void Send(v1::WatchMailboxResponse event) = 0;
  virtual bool Cancelled() const = 0;
  // `cancelled` is posted to the loop once the caller goes away (at once if it has).
  virtual void OnCancel(absl::AnyInvocable<void()> cancelled) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual void GetMailboxStatus(const CallTarget& target,
                                const v1::GetMailboxStatusRequest& request,
                                Reply<v1::GetMailboxStatusResponse> done) = 0;
  virtual void ListMessages(const CallTarget& target, const v1::ListMessagesRequest& request,
                            Reply<v1::ListMessagesResponse> done) = 0;
  virtual void GetMessage(const CallTarget& target, const v1::GetMessageRequest& request,
                          Reply<v1::GetMessageResponse> done) = 0;
  // Streams the raw source into `sink`; `done` ends the stream.
  virtual void StreamMessage(const CallTarget& target, const v1::StreamMessageRequest& request,
                             std::shared_ptr<ChunkSink> sink, Done done) = 0;
  virtual void GetAttachment(const CallTarget& target, const v1::GetAttachmentRequest& request,
                             std::shared_ptr<ChunkSink> sink, Done done) = 0;
  virtual void SearchMessages(const CallTarget& target, const v1::SearchMessagesRequest& request,
                              Reply<v1::SearchMessagesResponse> done) = 0;
  virtual void DeleteMessages(const CallTarget& target, const v1::DeleteMessagesRequest& request,
                              Reply<v1::DeleteMessagesResponse> done) = 0;
  virtual void Refresh(const CallTarget& target, const v1::RefreshRequest& request,
                       Reply<v1::RefreshResponse> done) = 0;

  // IMAP only (POP3: FAILED_PRECONDITION).
  virtual void ListFolders(const CallTarget& target, const v1::ListFoldersRequest& request,
                           Reply<v1::ListFoldersResponse> done) = 0;
  virtual void SelectFolder(const CallTarget& target, const v1::SelectFolderRequest& request,
                            Reply<v1::SelectFolderResponse> done) = 0;
  virtual void CreateFolder(const CallTarget& target, const v1::CreateFolderRequest& request,
                            Reply<v1::CreateFolderResponse> done) = 0;
  virtual void DeleteFolder(const CallTarget& target, const v1::DeleteFolderRequest& request,
                            Reply<v1::DeleteFolderResponse> done) = 0;
  virtual void RenameFolder(const CallTarget& target, const v1::RenameFolderRequest& request,
                            Reply<v1::RenameFolderResponse> done) = 0;
  virtual void CopyMessages(const CallTarget& target, const v1::CopyMessagesRequest& request,
                            Reply<v1::CopyMessagesResponse> done) = 0;
  virtual void MoveMessages(const CallTarget& target, const v1::MoveMessagesRequest& request,
                            Reply<v1::MoveMessagesResponse> done) = 0;
  virtual void UpdateFlags(const CallTarget& target, const v1::UpdateFlagsRequest& request,
                           Reply<v1::UpdateFlagsResponse> done) = 0;
  virtual void AppendMessage(const CallTarget& target, const v1::AppendMessageRequest& request,
                             Reply<v1::AppendMessageResponse> done) = 0;
  virtual void Expunge(const CallTarget& target, const v1::ExpungeRequest& request,
                       Reply<v1::ExpungeResponse> done) = 0;
  // Streams events into `sink` until the caller cancels (then `done` with OK), the session
  // closes (OK) or another folder is selected (ABORTED).
  virtual void WatchMailbox(const CallTarget& target, const v1::WatchMailboxRequest& request,
                            std::shared_ptr<EventSink> sink, Done done) = 0;
};

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_BACKEND_H_
