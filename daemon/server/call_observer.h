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
// x-mailpool-session header, else the ID a StartSession answers with. Method names that
// are not a registered service's are counted as service="unknown", method="unknown", so a
// caller cannot grow the label set. With `callers`, it also counts every call in flight
// per caller identity (callers::Callers::Enter/Leave), which the handlers' admission
// check reads. Thread-safe.
#ifndef MAILPOOL_SERVER_CALL_OBSERVER_H_
#define MAILPOOL_SERVER_CALL_OBSERVER_H_

#include <memory>

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}  // namespace grpc::experimental

namespace mailpool::callers {
class Callers;
}  // namespace mailpool::callers

namespace mailpool::server {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewCallObserverFactory(
    callers::Callers* callers = nullptr);

}  // namespace mailpool::server

#endif  // MAILPOOL_SERVER_CALL_OBSERVER_H_
