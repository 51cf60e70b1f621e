#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "net/event_loop.h"
#include "service/mailbox_service.h"
#include "service/message_service.h"
#include "service/send_service.h"
#include "service/session_service.h"
#include "service/unimplemented.h"

namespace mailpool::server {

struct Server::State {
  net::EventLoop loop;
  std::unique_ptr<pool::Pool> pool;
  std::unique_ptr<service::SessionServiceImpl> session_service;
  std::unique_ptr<service::MailboxServiceImpl> mailbox_service;
  std::unique_ptr<service::MessageServiceImpl> message_service;
  std::unique_ptr<service::SendServiceImpl> send_service;
  std::vector<std::unique_ptr<grpc::Service>> other_services;
  std::unique_ptr<grpc::Server> grpc_server;
  bool shut_down = false;
};

Server::Server(ServerOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {}

Server::~Server() { Shutdown(); }

absl::Status Server::Start() {
  state_->loop.Start();
  state_->pool = std::make_unique<pool::Pool>(state_->loop, options_.pool);
  state_->session_service =
      std::make_unique<service::SessionServiceImpl>(state_->loop, *state_->pool);
  state_->mailbox_service =
      std::make_unique<service::MailboxServiceImpl>(state_->loop, *state_->pool);
  state_->message_service = std::make_unique<service::MessageServiceImpl>();
  state_->send_service = std::make_unique<service::SendServiceImpl>(state_->loop, *state_->pool);
  state_->other_services = service::NewUnimplementedServices();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(service::kMaxReceiveMessageBytes);  // ParseSource: 64 MiB
  builder.RegisterService(state_->session_service.get());
  builder.RegisterService(state_->mailbox_service.get());
  builder.RegisterService(state_->message_service.get());
  builder.RegisterService(state_->send_service.get());
  for (auto& service : state_->other_services) builder.RegisterService(service.get());
  state_->grpc_server = builder.BuildAndStart();
  if (!state_->grpc_server || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  state_->grpc_server->GetHealthCheckService()->SetServingStatus(true);
  Log(LogLevel::kInfo, "mailpoold listening",
      {{"address", options_.listen}, {"port", absl::StrCat(port_)}});
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (state_->shut_down) return;
  state_->shut_down = true;
  // gRPC's Shutdown stops accepting calls at once but returns only when every running
  // callback call has finished, so it runs beside the steps that finish them.
  std::thread grpc_shutdown;
  if (state_->grpc_server) {
    state_->grpc_server->GetHealthCheckService()->SetServingStatus(false);
    grpc_shutdown = std::thread([this] {
      state_->grpc_server->Shutdown(std::chrono::system_clock::now() +
                                    absl::ToChronoMilliseconds(options_.shutdown_grace));
    });
  }
  if (state_->pool) {
    // LOGOUT/QUIT every session, bounded by the grace period; then answer whatever is
    // still pending (sessions still connecting, closes the server did not answer).
    auto closed = std::make_shared<std::promise<void>>();
    std::future<void> done = closed->get_future();
    state_->loop.Post([this, closed] {
      Log(LogLevel::kInfo, "closing sessions", {{"count", absl::StrCat(state_->pool->size())}});
      state_->pool->CloseAll([closed] { closed->set_value(); });
    });
    done.wait_for(absl::ToChronoMilliseconds(options_.shutdown_grace));
    state_->loop.RunSync([this] { state_->pool->Shutdown(); });
  }
  if (grpc_shutdown.joinable()) grpc_shutdown.join();
  if (state_->grpc_server) state_->grpc_server->Wait();
  state_->loop.Stop();
  state_->pool.reset();  // the loop is stopped: nothing runs concurrently
  Log(LogLevel::kInfo, "mailpoold stopped");
}

}  // namespace mailpool::server
