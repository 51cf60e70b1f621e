#include "server/call_observer.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "callers/callers.h"
#include "common/log.h"
#include "metrics/metrics.h"
#include "service/call.h"

namespace mailpool::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

absl::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// The session a message names: its string field `session` (requests), or the `id` of its
// message field `session` (StartSessionResponse); empty if none.
std::string SessionOf(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const FieldDescriptor* field = message.GetDescriptor()->FindFieldByName("session");
  if (field == nullptr || field->is_repeated()) return "";
  const google::protobuf::Reflection* reflection = message.GetReflection();
  if (field->type() == FieldDescriptor::TYPE_STRING) return reflection->GetString(message, field);
  if (field->type() != FieldDescriptor::TYPE_MESSAGE || !reflection->HasField(message, field)) {
    return "";
  }
  const google::protobuf::Message& session = reflection->GetMessage(message, field);
  const FieldDescriptor* id = session.GetDescriptor()->FindFieldByName("id");
  if (id == nullptr || id->is_repeated() || id->type() != FieldDescriptor::TYPE_STRING) return "";
  return session.GetReflection()->GetString(session, id);
}

// Whether service/method names a method some registered service has: every service with
// a generated descriptor (ours, reflection), and the health service (whose own runtime
// carries no descriptor here).
bool KnownMethod(const std::string& service, const std::string& method) {
  if (service == "grpc.health.v1.Health") return method == "Check" || method == "Watch";
  const google::protobuf::ServiceDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  return descriptor != nullptr && descriptor->FindMethodByName(method) != nullptr;
}

class CallObserver : public grpc::experimental::Interceptor {
 public:
  CallObserver(grpc::experimental::ServerRpcInfo* info, callers::Callers* callers)
      : start_(std::chrono::steady_clock::now()), info_(info), callers_(callers) {
    // "/mailpool.v1.SessionService/StartSession"
    absl::string_view full = info->method() != nullptr ? info->method() : "";
    if (absl::StartsWith(full, "/")) full.remove_prefix(1);
    size_t slash = full.rfind('/');
    service_ = std::string(full.substr(0, slash == absl::string_view::npos ? 0 : slash));
    method_ = std::string(slash == absl::string_view::npos ? full : full.substr(slash + 1));
    if (!KnownMethod(service_, method_)) service_ = method_ = "unknown";
    // Only our own services carry protobuf messages through the hooks; others (health)
    // may pass raw byte buffers.
    ours_ = absl::StartsWith(service_, "mailpool.");
    // One request message, which gRPC deserializes before the handler runs (in streams
    // from the caller, a null message only means the end of the stream).
    single_request_ = info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY ||
                      info->type() == grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING;
    inspect_ = LogEnabled(LogLevel::kDebug) && ours_;
  }

  ~CallObserver() override {
    if (!caller_.empty()) callers_->Leave(caller_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (callers_ != nullptr && caller_.empty() &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
        info_->server_context() != nullptr) {
      // Counted before the handler runs: its admission check sees this call too.
      absl::StatusOr<callers::Caller> caller =
          callers_->Identify(service::FactsOf(*info_->server_context()));
      if (caller.ok()) {
        caller_ = std::move(caller->name);
        callers_->Enter(caller_);
      }
    }
    if (inspect_) Inspect(methods);
    if (ours_ && single_request_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsable_ = true;  // gRPC could not deserialize the request; no handler runs
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      if (unparsable_ && methods->GetSendStatus().error_code() != grpc::StatusCode::CANCELLED) {
        // gRPC's own answer (INTERNAL) would blame the daemon for the caller's bytes.
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("the request is not a valid ", method_,
                         " message (a string field that is not UTF-8, nesting deeper than "
                         "100 levels, or bytes that are not protobuf)")));
      }
      Finish(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Inspect(grpc::experimental::InterceptorBatchMethods* methods) {
    if (!session_.empty()) return;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      if (auto* m = static_cast<const google::protobuf::Message*>(methods->GetRecvMessage())) {
        session_ = SessionOf(*m);
      }
    }
    if (session_.empty() &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* metadata = methods->GetRecvInitialMetadata();
      auto it = metadata->find("x-mailpool-session");
      if (it != metadata->end()) session_.assign(it->second.data(), it->second.size());
    }
    if (session_.empty() && method_ == "StartSession" &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (auto* m = static_cast<const google::protobuf::Message*>(methods->GetSendMessage())) {
        session_ = SessionOf(*m);
      }
    }
  }

  void Finish(grpc::StatusCode code) {
    static metrics::CounterFamily& calls = metrics::Registry::Default().Counter(
        "mailpool_grpc_calls_total", "gRPC calls answered, by service, method and status code.",
        {"service", "method", "code"});
    static metrics::HistogramFamily& latency = metrics::Registry::Default().Histogram(
        "mailpool_grpc_call_duration_seconds",
        "Time from a call's arrival to its status, by service and method.", {"service", "method"},
        metrics::LatencyBuckets());
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    absl::string_view code_name = CodeName(code);
    calls.WithLabels({service_, method_, code_name}).Increment();
    latency.WithLabels({service_, method_}).Observe(seconds);
    if (LogEnabled(LogLevel::kDebug)) {
      Log(LogLevel::kDebug, "call",
          {{"method", method_},
           {"caller", caller_.empty() ? "-" : caller_},
           {"session", session_.empty() ? "-" : session_},
           {"code", code_name},
           {"ms", absl::StrCat(static_cast<int64_t>(seconds * 1000))}});
    }
  }

  std::chrono::steady_clock::time_point start_;
  grpc::experimental::ServerRpcInfo* info_;
  callers::Callers* callers_;
  std::string caller_;  // counted in flight under this identity
  std::string service_;
  std::string method_;
  std::string session_;
  bool inspect_ = false;
  bool ours_ = false;
  bool single_request_ = false;
  bool unparsable_ = false;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(callers::Callers* callers) : callers_(callers) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallObserver(info, callers_);
  }

 private:
  callers::Callers* callers_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewCallObserverFactory(
    callers::Callers* callers) {
  return std::make_unique<Factory>(callers);
}

}  // namespace mailpool::server
