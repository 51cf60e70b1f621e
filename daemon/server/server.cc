#include "server/server.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "common/status.h"
#include "metrics/metrics.h"
#include "net/event_loop.h"
#include "net/http_server.h"
#include "outbox/outbox.h"
#include "server/call_observer.h"
#include "server/reflection_v1.h"
#include "server/tls_files.h"
#include "server/unix_listener.h"
#include "service/mailbox_service.h"
#include "service/message_service.h"
#include "service/send_service.h"
#include "service/session_service.h"
#include "session/oauth2_source.h"

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

// Whether a TCP listen address (host:port) accepts only local connections.
bool IsLoopback(absl::string_view address) {
  absl::string_view host = address.substr(0, address.rfind(':'));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

LogLevel GrpcLevel(gpr_log_severity severity) {
  switch (severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      return LogLevel::kDebug;
    case GPR_LOG_SEVERITY_INFO:
      return LogLevel::kInfo;
    case GPR_LOG_SEVERITY_ERROR:
      return LogLevel::kError;
  }
  return LogLevel::kError;
}

}  // namespace

void RouteLibraryLogs() {
  gpr_set_log_function([](gpr_log_func_args* args) {
    LogLevel level = GrpcLevel(args->severity);
    if (!LogEnabled(level)) return;
    Log(level, "grpc log",
        {{"file", args->file != nullptr ? args->file : "?"},
         {"line", absl::StrCat(args->line)},
         {"message", args->message != nullptr ? args->message : ""}});
  });
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
        LogLevel ours = level == google::protobuf::LOGLEVEL_INFO      ? LogLevel::kInfo
                        : level == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                      : LogLevel::kError;
        Log(ours, "protobuf log",
            {{"file", file != nullptr ? file : "?"},
             {"line", absl::StrCat(line)},
             {"message", message}});
      });
}

struct Server::State {
  net::EventLoop loop;
  // Before the pool: the sessions' token sources post the Refresher's answers to the loop
  // until the last of them is gone.
  service::OAuth2Setup oauth2;
  std::unique_ptr<pool::Pool> pool;
  std::unique_ptr<outbox::Outbox> outbox;
  std::unique_ptr<service::SessionServiceImpl> session_service;
  std::unique_ptr<service::MailboxServiceImpl> mailbox_service;
  std::unique_ptr<service::MessageServiceImpl> message_service;
  std::unique_ptr<service::SendServiceImpl> send_service;
  std::unique_ptr<grpc::Service> reflection_v1;  // v1alpha comes from gRPC's plugin
  std::unique_ptr<callers::Callers> callers;
  std::unique_ptr<TlsFiles> tls;  // outlives the gRPC server, which watches its files
  std::vector<std::unique_ptr<UnixListener>> unix_listeners;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<net::HttpServer> metrics_http;  // loop-confined
  int metrics_collector = 0;
  bool shut_down = false;
};

Server::Server(ServerOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {}

Server::~Server() { Shutdown(); }

absl::Status Server::Start() {
  // Listeners and caller authentication are checked before anything is opened.
  std::vector<std::string> tcp, unix_paths;
  for (absl::string_view address : absl::StrSplit(options_.listen, ',', absl::SkipWhitespace())) {
    address = absl::StripAsciiWhitespace(address);
    if (absl::ConsumePrefix(&address, "unix:")) {
      unix_paths.emplace_back(address);
    } else {
      tcp.emplace_back(address);
    }
  }
  if (tcp.empty() && unix_paths.empty()) {
    return absl::InvalidArgumentError("--listen: no address given");
  }
  if (options_.tls_cert.empty() != options_.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (!options_.tls_client_ca.empty() && options_.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  }
  options_.callers.client_certificates = !options_.tls_client_ca.empty();
  state_->callers = std::make_unique<callers::Callers>(options_.callers);
  MP_RETURN_IF_ERROR(state_->callers->Load());
  for (const std::string& address : tcp) {
    if (IsLoopback(address) || state_->callers->authentication_required()) continue;
    if (!options_.allow_unauthenticated_network) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to listen on ", address,
          " without caller authentication: anyone who reaches it could use every session. "
          "Give --caller_tokens_file (with --tls_cert/--tls_key so tokens are not sent in "
          "clear) or --tls_client_ca, listen on loopback or unix:PATH, or pass "
          "--allow_unauthenticated_network"));
    }
    Log(LogLevel::kWarning,
        "UNAUTHENTICATED NETWORK LISTENER: every caller that reaches it "
        "can use every session (--allow_unauthenticated_network)",
        {{"address", address}});
  }
  if (!options_.tls_cert.empty()) {
    absl::StatusOr<std::unique_ptr<TlsFiles>> tls =
        TlsFiles::Open(options_.tls_cert, options_.tls_key, options_.tls_client_ca);
    if (!tls.ok()) return tls.status();
    state_->tls = *std::move(tls);
  }
  for (const std::string& path : unix_paths) {
    absl::StatusOr<std::unique_ptr<UnixListener>> listener =
        UnixListener::Open(path, options_.listen_group);
    if (!listener.ok()) return listener.status();
    state_->unix_listeners.push_back(*std::move(listener));
  }

  if (!options_.oauth2_providers_file.empty()) {
    absl::StatusOr<std::vector<oauth2::Provider>> providers =
        oauth2::LoadProvidersFile(options_.oauth2_providers_file);
    if (!providers.ok()) return providers.status();
    state_->oauth2.providers = *std::move(providers);
  }
  if (!options_.oauth2_ca_file.empty() && access(options_.oauth2_ca_file.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--oauth2_ca_file: cannot read ", options_.oauth2_ca_file));
  }

  std::string outbox_path =
      options_.outbox_path.empty() ? outbox::DefaultPath() : options_.outbox_path;
  absl::StatusOr<std::unique_ptr<outbox::Outbox>> outbox =
      outbox::Outbox::Open(outbox_path, {.max_batch = options_.outbox_max_batch});
  if (!outbox.ok()) return outbox.status();
  state_->outbox = std::move(*outbox);
  Log(LogLevel::kInfo, "outbox open",
      {{"path", outbox_path}, {"pending", absl::StrCat(state_->outbox->Depth())}});
  state_->loop.Start();
  state_->pool = std::make_unique<pool::Pool>(state_->loop, options_.pool);
  callers::Callers& callers = *state_->callers;
  auto refresher = std::make_shared<oauth2::Refresher>(
      oauth2::Refresher::Options{.ca_file = options_.oauth2_ca_file});
  state_->oauth2.make_source = [&loop = state_->loop, refresher](oauth2::Client client,
                                                                 Secret refresh_token) {
    static metrics::CounterFamily& refreshes = metrics::Registry::Default().Counter(
        "mailpool_oauth2_refreshes_total",
        "OAuth2 access tokens asked for with a refresh token, by result (ok, refused: the "
        "grant was refused, unavailable: the endpoint could not be asked)",
        {"result"});
    return std::make_shared<session::OAuth2Source>(
        loop, refresher, std::move(client), std::move(refresh_token),
        [](absl::string_view result) { refreshes.WithLabels({std::string(result)}).Increment(); });
  };
  state_->session_service = std::make_unique<service::SessionServiceImpl>(
      state_->loop, *state_->pool, callers, state_->oauth2);
  state_->mailbox_service =
      std::make_unique<service::MailboxServiceImpl>(state_->loop, *state_->pool, callers);
  state_->message_service = std::make_unique<service::MessageServiceImpl>(callers);
  state_->send_service = std::make_unique<service::SendServiceImpl>(
      state_->loop, *state_->pool, *state_->outbox, callers, options_.sender,
      options_.pool.instance_tag);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<int> ports(tcp.size(), 0);
  for (size_t i = 0; i < tcp.size(); ++i) {
    builder.AddListeningPort(
        tcp[i], state_->tls ? state_->tls->credentials() : grpc::InsecureServerCredentials(),
        &ports[i]);
  }
  builder.SetMaxReceiveMessageSize(service::kMaxReceiveMessageBytes);  // ParseSource: 64 MiB
  builder.RegisterService(state_->session_service.get());
  builder.RegisterService(state_->mailbox_service.get());
  builder.RegisterService(state_->message_service.get());
  builder.RegisterService(state_->send_service.get());
  state_->reflection_v1 = NewReflectionV1Service(
      {"mailpool.v1.SessionService", "mailpool.v1.MailboxService", "mailpool.v1.MessageService",
       "mailpool.v1.SendService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
       "grpc.reflection.v1alpha.ServerReflection"});
  builder.RegisterService(state_->reflection_v1.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(NewCallObserverFactory(&callers));
  builder.experimental().SetInterceptorCreators(std::move(observers));
  state_->grpc_server = builder.BuildAndStart();
  if (!state_->grpc_server) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  for (size_t i = 0; i < tcp.size(); ++i) {
    if (ports[i] == 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", tcp[i]));
  }
  port_ = ports.empty() ? 0 : ports.front();
  for (auto& listener : state_->unix_listeners) {
    listener->Start(state_->grpc_server.get(), &callers);
  }
  state_->grpc_server->GetHealthCheckService()->SetServingStatus(true);
  // Health per service name too, for probes and balancers that ask for one.
  for (const char* name : {"mailpool.v1.SessionService", "mailpool.v1.MailboxService",
                           "mailpool.v1.MessageService", "mailpool.v1.SendService"}) {
    state_->grpc_server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  state_->loop.Post([this] { state_->send_service->StartSender(); });
  Log(LogLevel::kInfo, "mailpoold listening",
      {{"address", options_.listen},
       {"port", absl::StrCat(port_)},
       {"tls", state_->tls ? (options_.tls_client_ca.empty() ? "on" : "mutual") : "off"},
       {"caller_tokens", absl::StrCat(callers.token_count())}});
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
  std::optional<net::HttpServer::Tls> tls;
  if (options_.metrics_tls_cert.empty() != options_.metrics_tls_key.empty()) {
    return absl::InvalidArgumentError("--metrics_tls_cert and --metrics_tls_key go together");
  }
  if (!options_.metrics_tls_cert.empty()) {
    std::ifstream cert(options_.metrics_tls_cert), key(options_.metrics_tls_key);
    if (!cert || !key) {
      return absl::InvalidArgumentError("cannot read --metrics_tls_cert or --metrics_tls_key");
    }
    std::stringstream c, k;
    c << cert.rdbuf();
    k << key.rdbuf();
    tls = net::HttpServer::Tls{c.str(), k.str()};
  }
  state_->loop.RunSync([&] {
    auto http = net::HttpServer::Listen(
        state_->loop, options_.metrics_listen,
        [](absl::string_view path) -> net::HttpResponse {
          if (path != "/metrics") return {404, "text/plain; charset=utf-8", "not found\n"};
          return {200, "text/plain; version=0.0.4; charset=utf-8",
                  metrics::Registry::Default().Scrape()};
        },
        tls ? &*tls : nullptr);
    if (!http.ok()) {
      status = http.status();
      return;
    }
    state_->metrics_http = *std::move(http);
    metrics_port_ = state_->metrics_http->port();
  });
  if (!status.ok()) return status;
  Log(LogLevel::kInfo, "metrics listening",
      {{"address", options_.metrics_listen},
       {"port", absl::StrCat(metrics_port_)},
       {"tls", tls ? "on" : "off"}});
  return absl::OkStatus();
}

absl::Status Server::Reload() {
  absl::Status status;
  if (state_->callers) {
    absl::Status tokens = state_->callers->Load();
    if (tokens.ok()) {
      Log(LogLevel::kInfo, "caller tokens reloaded",
          {{"count", absl::StrCat(state_->callers->token_count())}});
    } else {
      Log(LogLevel::kError, "caller tokens not reloaded; the previous ones stay in use",
          {{"error", tokens.ToString()}});
      status.Update(tokens);
    }
  }
  if (state_->tls) {
    absl::Status tls = state_->tls->Reload();
    if (tls.ok()) {
      Log(LogLevel::kInfo, "TLS files reloaded", {{"cert", options_.tls_cert}});
    } else {
      Log(LogLevel::kError, "TLS files not reloaded; the previous ones stay in use",
          {{"error", tls.ToString()}});
      status.Update(tls);
    }
  }
  return status;
}

void Server::Shutdown() {
  if (state_->shut_down) return;
  state_->shut_down = true;
  for (auto& listener : state_->unix_listeners) listener->Stop();
  if (state_->metrics_collector != 0) {
    metrics::Registry::Default().RemoveCollector(state_->metrics_collector);
  }
  if (state_->metrics_http) state_->loop.RunSync([this] { state_->metrics_http.reset(); });
  // One deadline for all of it: gRPC cancels what is still running when the grace runs
  // out, so the pool answers its callers (with statuses that say what happened, e.g.
  // OUTCOME_UNKNOWN for a send that was running) a quarter of the grace before that.
  auto now = std::chrono::steady_clock::now();
  auto grace = absl::ToChronoMilliseconds(options_.shutdown_grace);
  auto answer_by = now + grace - grace / 4;
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
    drain_done.wait_until(now + grace / 2);
    // LOGOUT/QUIT every session, bounded by the grace period; then answer whatever is
    // still pending (sessions still connecting, closes the server did not answer).
    auto closed = std::make_shared<std::promise<void>>();
    std::future<void> done = closed->get_future();
    state_->loop.Post([this, closed] {
      Log(LogLevel::kInfo, "closing sessions", {{"count", absl::StrCat(state_->pool->size())}});
      state_->pool->CloseAll([closed] { closed->set_value(); });
    });
    done.wait_until(answer_by);
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
