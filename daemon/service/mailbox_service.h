// MailboxService over the pool: validates requests on gRPC threads, posts them to the
// event loop, routes them by the session's kind to a mailbox backend (mailbox/), and
// finishes the reactor from the loop.
//
// Routing: pop3 and pop3_smtp sessions -> mailbox::Pop3Backend; imap ->
// mailbox::ImapBackend; smtp -> FAILED_PRECONDITION. IMAP-only calls (folders, flags,
// copy/move, append, expunge, watch) on a POP3 session are FAILED_PRECONDITION.
//
// Streaming calls (StreamMessage, GetAttachment) keep one Write in flight and a bounded
// queue behind it; while the queue is full the backend stops reading from the mail
// server. Thread-safe.
#ifndef MAILPOOL_SERVICE_MAILBOX_SERVICE_H_
#define MAILPOOL_SERVICE_MAILBOX_SERVICE_H_

#include <memory>

#include "common/call.h"
#include "mailbox/backend.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "service/call.h"

namespace mailpool::service {

class MailboxServiceImpl final : public v1::MailboxService::CallbackService {
 public:
  MailboxServiceImpl(net::EventLoop& loop, pool::Pool& pool, const callers::Callers& callers);
  ~MailboxServiceImpl() override;

  grpc::ServerUnaryReactor* GetMailboxStatus(grpc::CallbackServerContext* context,
                                             const v1::GetMailboxStatusRequest* request,
                                             v1::GetMailboxStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListMessages(grpc::CallbackServerContext* context,
                                         const v1::ListMessagesRequest* request,
                                         v1::ListMessagesResponse* response) override;
  grpc::ServerUnaryReactor* GetMessage(grpc::CallbackServerContext* context,
                                       const v1::GetMessageRequest* request,
                                       v1::GetMessageResponse* response) override;
  grpc::ServerWriteReactor<v1::StreamMessageResponse>* StreamMessage(
      grpc::CallbackServerContext* context, const v1::StreamMessageRequest* request) override;
  grpc::ServerWriteReactor<v1::GetAttachmentResponse>* GetAttachment(
      grpc::CallbackServerContext* context, const v1::GetAttachmentRequest* request) override;
  grpc::ServerUnaryReactor* SearchMessages(grpc::CallbackServerContext* context,
                                           const v1::SearchMessagesRequest* request,
                                           v1::SearchMessagesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteMessages(grpc::CallbackServerContext* context,
                                           const v1::DeleteMessagesRequest* request,
                                           v1::DeleteMessagesResponse* response) override;
  grpc::ServerUnaryReactor* Refresh(grpc::CallbackServerContext* context,
                                    const v1::RefreshRequest* request,
                                    v1::RefreshResponse* response) override;

  // IMAP only.
  grpc::ServerUnaryReactor* ListFolders(grpc::CallbackServerContext* context,
                                        const v1::ListFoldersRequest* request,
                                        v1::ListFoldersResponse* response) override;
  grpc::ServerUnaryReactor* SelectFolder(grpc::CallbackServerContext* context,
                                         const v1::SelectFolderRequest* request,
                                         v1::SelectFolderResponse* response) override;
  grpc::ServerUnaryReactor* CreateFolder(grpc::CallbackServerContext* context,
                                         const v1::CreateFolderRequest* request,
                                         v1::CreateFolderResponse* response) override;
  grpc::ServerUnaryReactor* DeleteFolder(grpc::CallbackServerContext* context,
                                         const v1::DeleteFolderRequest* request,
                                         v1::DeleteFolderResponse* response) override;
  grpc::ServerUnaryReactor* RenameFolder(grpc::CallbackServerContext* context,
                                         const v1::RenameFolderRequest* request,
                                         v1::RenameFolderResponse* response) override;
  grpc::ServerUnaryReactor* CopyMessages(grpc::CallbackServerContext* context,
                                         const v1::CopyMessagesRequest* request,
                                         v1::CopyMessagesResponse* response) override;
  grpc::ServerUnaryReactor* MoveMessages(grpc::CallbackServerContext* context,
                                         const v1::MoveMessagesRequest* request,
                                         v1::MoveMessagesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateFlags(grpc::CallbackServerContext* context,
                                        const v1::UpdateFlagsRequest* request,
                                        v1::UpdateFlagsResponse* response) override;
  grpc::ServerUnaryReactor* AppendMessage(grpc::CallbackServerContext* context,
                                          const v1::AppendMessageRequest* request,
                                          v1::AppendMessageResponse* response) override;
  grpc::ServerUnaryReactor* Expunge(grpc::CallbackServerContext* context,
                                    const v1::ExpungeRequest* request,
                                    v1::ExpungeResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchMailboxResponse>* WatchMailbox(
      grpc::CallbackServerContext* context, const v1::WatchMailboxRequest* request) override;

 private:
  // On the loop: the backend serving the session `ref` names, and the call's target.
  absl::StatusOr<std::pair<mailbox::Backend*, mailbox::CallTarget>> Route(const Target& ref);
  template <typename Request, typename Response, typename Method>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const Request* request,
                                  Response* response, absl::Status valid, Method method,
                                  bool holds_message = false);
  // On the loop: runs the backend's method for the call, once more if the session's
  // connection was re-established under it (reason LINK_RECONNECTED).
  template <typename Request, typename Response, typename Method>
  void RunUnary(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                const Request* request, Response* response, Method method, const Target& ref,
                std::shared_ptr<CallToken> call, int attempt);

  net::EventLoop& loop_;
  pool::Pool& pool_;
  const callers::Callers& callers_;
  std::unique_ptr<mailbox::Backend> pop3_;  // used on the loop only
  std::unique_ptr<mailbox::Backend> imap_;  // used on the loop only
};

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_MAILBOX_SERVICE_H_
