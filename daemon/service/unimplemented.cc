#include "service/unimplemented.h"

#include "mailpool/v1/send.grpc.pb.h"

namespace mailpool::service {
namespace {

grpc::Status NotYet(const char* method, const char* work) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string(method) + " is not implemented yet (" + work +
                          "); see README.md, \"Not done yet\"");
}

// A server-streaming reactor that ends the call at once with `status`.
template <typename T>
class FinishedWriter : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

#define MP_UNARY(Service, Method, Work)                                               \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,            \
                                   const v1::Method##Request*, v1::Method##Response*) \
      override {                                                                      \
    auto* reactor = context->DefaultReactor();                                        \
    reactor->Finish(NotYet(#Service "." #Method, Work));                              \
    return reactor;                                                                   \
  }
#define MP_STREAM(Service, Method, Work)                                                  \
  grpc::ServerWriteReactor<v1::Method##Response>* Method(grpc::CallbackServerContext*,  \
                                                         const v1::Method##Request*)    \
      override {                                                                          \
    return new FinishedWriter<v1::Method##Response>(NotYet(#Service "." #Method, Work));  \
  }

class UnimplementedSendService final : public v1::SendService::CallbackService {
 public:
  MP_UNARY(SendService, SendMessage, "the sending work")
  MP_UNARY(SendService, GetSendStatus, "the sending work")
  MP_UNARY(SendService, ListOutbox, "the sending work")
  MP_UNARY(SendService, CancelSend, "the sending work")
  MP_STREAM(SendService, WatchSendStatus, "the sending work")
  MP_UNARY(SendService, CheckAddress, "the sending work")
};

#undef MP_UNARY
#undef MP_STREAM

}  // namespace

std::vector<std::unique_ptr<grpc::Service>> NewUnimplementedServices() {
  std::vector<std::unique_ptr<grpc::Service>> services;
  services.push_back(std::make_unique<UnimplementedSendService>());
  return services;
}

}  // namespace mailpool::service
