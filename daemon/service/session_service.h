// SessionService over the pool: StartSession, CloseSession, GetSession, ListSessions,
// UpdateSession, Get/SetDefaultTimeout.
//
// Handlers run on gRPC threads: they validate, post the work to the event loop, and the
// loop finishes the reactor. Thread-safe.
#ifndef MAILPOOL_SERVICE_SESSION_SERVICE_H_
#define MAILPOOL_SERVICE_SESSION_SERVICE_H_

#include "callers/callers.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "service/call.h"
#include "service/validation.h"

namespace mailpool::service {

// Request header that may carry the session ID (for proxies that route by session).
inline constexpr char kSessionHeader[] = "x-mailpool-session";

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  // `oauth2` (refreshable OAuth2 credentials) must outlive the service.
  SessionServiceImpl(net::EventLoop& loop, pool::Pool& pool, callers::Callers& callers,
                     const OAuth2Setup& oauth2 = OAuth2Setup::None())
      : loop_(loop), pool_(pool), callers_(callers), oauth2_(oauth2) {}

  grpc::ServerUnaryReactor* StartSession(grpc::CallbackServerContext* context,
                                         const v1::StartSessionRequest* request,
                                         v1::StartSessionResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const v1::CloseSessionRequest* request,
                                         v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::GetSessionResponse* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* context,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateSession(grpc::CallbackServerContext* context,
                                          const v1::UpdateSessionRequest* request,
                                          v1::UpdateSessionResponse* response) override;
  grpc::ServerUnaryReactor* GetDefaultTimeout(grpc::CallbackServerContext* context,
                                              const v1::GetDefaultTimeoutRequest* request,
                                              v1::GetDefaultTimeoutResponse* response) override;
  grpc::ServerUnaryReactor* SetDefaultTimeout(grpc::CallbackServerContext* context,
                                              const v1::SetDefaultTimeoutRequest* request,
                                              v1::SetDefaultTimeoutResponse* response) override;

 private:
  net::EventLoop& loop_;
  pool::Pool& pool_;
  callers::Callers& callers_;
  const OAuth2Setup& oauth2_;
};

// The session reference of a request: the body's `session`, else the routing header;
// INVALID_ARGUMENT when both are set and disagree, or neither is.
absl::StatusOr<std::string> SessionRef(const grpc::CallbackServerContext& context,
                                       const std::string& body_value);

// CallerOf, then SessionRef: UNAUTHENTICATED before anything about the request is said.
absl::StatusOr<Target> TargetOf(const grpc::CallbackServerContext& context,
                                const callers::Callers& callers, const std::string& body_value);

// Finishes `reactor` with `status` (adding the error detail trailer).
void Finish(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
            const absl::Status& status);

void ToProto(const session::SessionSnapshot& snapshot, v1::Session* out);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_SESSION_SERVICE_H_
