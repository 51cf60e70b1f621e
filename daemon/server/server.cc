#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "metrics/metrics.h"
#include "net/event_loop.h"
#include "net/http_server.h"
#include "outbox/outbox.h"
#include "server/call_observer.h"
#include "service/mailbox_service.h"
#include "service/message_service.h"
#include "service/send_service.h"
#include "service/session_service.h"

namespace mailpool::server {
namespace {

absl::string_view KindLabel(session::Kind kind) {
  switch (kind) {
    case session::Kind::kImap:
      return "imap";
    case session::Kind::kPop3:
      return "pop3";
    case session::Kind::kSmtp:
      return "smtp";
    case session::Kind::kPop3Smtp:
      return "pop3_smtp";
  }
  return "other";
}

absl::string_view StateLabel(session::State state) {
  switch (state) {
    case session::State::kConnecting:
      return "connecting";
    case session::State::kReady:
      return "ready";
    case session::State::kBusy:
      return "busy";
    case session::State::kBroken:
      return "broken";
    case session::State::kClosed:
      return "closed";
  }
  return "other";
}

// Sets the session gauges and the pool's totals from the pool; every protocol x state
// series is written, zeros included, so a scrape shows a state emptying. Runs on the loop.
void CollectPool(const pool::Pool& pool) {
  static metrics::Registry& r = metrics::Registry::Default();
  static metrics::GaugeFamily& sessions =
      r.Gauge("mailpool_sessions", "Sessions held, by protocol and state.", {"protocol", "state"});
  static metrics::CounterFamily& reconnects = r.Counter(
      "mailpool_reconnects_total",
      "Logins after a dropped connection, all sessions: result ok or failed.", {"result"});
  static metrics::CounterFamily& keepalives =
      r.Counter("mailpool_keepalives_total", "Keepalive NOOPs sent to mail servers.");
  static metrics::CounterFamily& evictions =
      r.Counter("mailpool_evictions_total",
                "Sessions evicted: idle too long or past their lifetime.", {"reason"});
  static metrics::GaugeFamily& handshakes = r.Gauge(
      "mailpool_tls_handshakes", "TLS handshakes in flight, and waiting for the limit.", {"state"});
  constexpr session::Kind kKinds[] = {session::Kind::kImap, session::Kind::kPop3,
                                      session::Kind::kSmtp, session::Kind::kPop3Smtp};
  constexpr session::State kStates[] = {session::State::kConnecting, session::State::kReady,
                                        session::State::kBusy, session::State::kBroken,
                                        session::State::kClosed};
  int counts[std::size(kKinds)][std::size(kStates)] = {};
  pool.ForEach([&](const session::Session& s) {
    ++counts[static_cast<int>(s.kind())][static_cast<int>(s.state())];
  });
  for (session::Kind kind : kKinds) {
    for (session::State state : kStates) {
      sessions.WithLabels({KindLabel(kind), StateLabel(state)})
          .Set(counts[static_cast<int>(kind)][static_cast<int>(state)]);
    }
  }
  pool::PoolStats stats = pool.stats();
  reconnects.WithLabels({"ok"}).Set(stats.reconnects);
  reconnects.WithLabels({"failed"}).Set(stats.failed_reconnects);
  keepalives.WithLabels({}).Set(stats.keepalives);
  evictions.WithLabels({"idle"}).Set(stats.evicted_idle);
  evictions.WithLabels({"lifetime"}).Set(stats.evicted_lifetime);
  handshakes.WithLabels({"in_flight"}).Set(stats.handshakes_in_flight);
  handshakes.WithLabels({"waiting"}).Set(static_cast<double>(stats.handshakes_waiting));
}

}  // namespace

struct Server::State {
  net::EventLoop loop;
  std::unique_ptr<pool::Pool> pool;
  std::unique_ptr<outbox::Outbox> outbox;
  std::unique_ptr<service::SessionServiceImpl> session_service;
  std::unique_ptr<service::MailboxServiceImpl> mailbox_service;
  std::unique_ptr<service::MessageServiceImpl> message_service;
  std::unique_ptr<service::SendServiceImpl> send_service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<net::HttpServer> metrics_http;  // loop-confined
  int metrics_collector = 0;
  bool shut_down = false;
};

Server::Server(ServerOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {}

Server::~Server() { Shutdown(); }

absl::Status Server::Start() {
  std::string outbox_path =
      options_.outbox_path.empty() ? outbox::DefaultPath() : options_.outbox_path;
  absl::StatusOr<std::unique_ptr<outbox::Outbox>> outbox = outbox::Outbox::Open(outbox_path);
  if (!outbox.ok()) return outbox.status();
  state_->outbox = std::move(*outbox);
  Log(LogLevel::kInfo, "outbox open",
      {{"path", outbox_path}, {"pending", absl::StrCat(state_->outbox->Depth())}});
  state_->loop.Start();
  state_->pool = std::make_unique<pool::Pool>(state_->loop, options_.pool);
  state_->session_service =
      std::make_unique<service::SessionServiceImpl>(state_->loop, *state_->pool);
  state_->mailbox_service =
      std::make_unique<service::MailboxServiceImpl>(state_->loop, *state_->pool);
  state_->message_service = std::make_unique<service::MessageServiceImpl>();
  state_->send_service = std::make_unique<service::SendServiceImpl>(
      state_->loop, *state_->pool, *state_->outbox, options_.sender, options_.pool.instance_tag);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(service::kMaxReceiveMessageBytes);  // ParseSource: 64 MiB
  builder.RegisterService(state_->session_service.get());
  builder.RegisterService(state_->mailbox_service.get());
  builder.RegisterService(state_->message_service.get());
  builder.RegisterService(state_->send_service.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(NewCallObserverFactory());
  builder.experimental().SetInterceptorCreators(std::move(observers));
  state_->grpc_server = builder.BuildAndStart();
  if (!state_->grpc_server || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  state_->grpc_server->GetHealthCheckService()->SetServingStatus(true);
  state_->loop.Post([this] { state_->send_service->StartSender(); });
  Log(LogLevel::kInfo, "mailpoold listening",
      {{"address", options_.listen}, {"port", absl::StrCat(port_)}});
  if (!options_.metrics_listen.empty()) return StartMetrics();
  return absl::OkStatus();
}

absl::Status Server::StartMetrics() {
  // The session gauges read the pool, which lives on the loop: the endpoint scrapes there.
  state_->metrics_collector = metrics::Registry::Default().AddCollector([this] {
    static metrics::GaugeFamily& outbox_depth = metrics::Registry::Default().Gauge(
        "mailpool_outbox_depth", "Messages in the outbox not yet sent, failed or cancelled.");
    outbox_depth.WithLabels({}).Set(static_cast<double>(state_->outbox->Depth()));
    if (state_->loop.IsInLoopThread()) return CollectPool(*state_->pool);
    state_->loop.RunSync([this] { CollectPool(*state_->pool); });
  });
  absl::Status status;
  state_->loop.RunSync([&] {
    auto http = net::HttpServer::Listen(
        state_->loop, options_.metrics_listen, [](absl::string_view path) -> net::HttpResponse {
          if (path != "/metrics") return {404, "text/plain; charset=utf-8", "not found\n"};
          return {200, "text/plain; version=0.0.4; charset=utf-8",
                  metrics::Registry::Default().Scrape()};
        });
    if (!http.ok()) {
      status = http.status();
      return;
    }
    state_->metrics_http = *std::move(http);
    metrics_port_ = state_->metrics_http->port();
  });
  if (!status.ok()) return status;
  Log(LogLevel::kInfo, "metrics listening",
      {{"address", options_.metrics_listen}, {"port", absl::StrCat(metrics_port_)}});
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (state_->shut_down) return;
  state_->shut_down = true;
  if (state_->metrics_collector != 0) {
    metrics::Registry::Default().RemoveCollector(state_->metrics_collector);
  }
  if (state_->metrics_http) state_->loop.RunSync([this] { state_->metrics_http.reset(); });
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
  if (state_->send_service) state_->send_service->StopWatches();
  if (state_->pool) {
    // Let the outbox's attempts in flight end (half the grace at most) so that none is
    // left half done; what remains is settled by Outbox::Recover below.
    auto drained = std::make_shared<std::promise<void>>();
    std::future<void> drain_done = drained->get_future();
    state_->loop.Post(
        [this, drained] { state_->send_service->Drain([drained] { drained->set_value(); }); });
    drain_done.wait_for(absl::ToChronoMilliseconds(options_.shutdown_grace / 2));
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
  if (state_->outbox) {
    // Nothing is left SENDING: an attempt cut short goes back to QUEUED (marked possibly
    // sent if its data was in flight) for the next start.
    absl::StatusOr<int> settled = state_->outbox->Recover();
    Log(LogLevel::kInfo, "outbox closed",
        {{"pending", absl::StrCat(state_->outbox->Depth())},
         {"interrupted", settled.ok() ? absl::StrCat(*settled) : "?"}});
  }
  Log(LogLevel::kInfo, "mailpoold stopped");
}

}  // namespace mailpool::server
