// CallObserver: a gRPC server interceptor that measures every call, so no service needs
// to: mailpool_grpc_calls_total{service,method,code}, the latency histogram
// mailpool_grpc_call_duration_seconds{service,method}, and at debug level one log line per
// call (method, session, code, duration).
//
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(server::NewCallObserverFactory());
//   builder.experimental().SetInterceptorCreators(std::move(f));
//
// The session in the log line is the request's `session` field (an ID or a name), else the
// x-mailpool-session header, else the ID a StartSession answers with. Thread-safe.
#ifndef MAILPOOL_SERVER_CALL_OBSERVER_H_
#define MAILPOOL_SERVER_CALL_OBSERVER_H_

#include <memory>

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}  // namespace grpc::experimental

namespace mailpool::server {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewCallObserverFactory();

}  // namespace mailpool::server

#endif  // MAILPOOL_SERVER_CALL_OBSERVER_H_
