// Measures, against the real test servers and an in-process mailpoold reached over gRPC:
//  1. the time of one StartSession (+ CloseSession) per protocol and security mode;
//  2. the memory held per idle session, for N idle IMAP sessions over implicit TLS and,
//     as the baseline measured in the same run, N idle IMAP sessions without TLS.
// Memory is the heap in use (mallinfo2) and the resident set, before and after opening the
// sessions, divided by N. Needs the MAILPOOL_TEST_* environment (scripts/bench.sh).
//
// Usage: session_bench [SESSIONS] [STARTS_PER_MODE]   (defaults 500 and 20)
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"

namespace {

namespace v1 = mailpool::v1;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    fprintf(stderr, "%s is not set; run scripts/bench.sh\n", name);
    std::exit(2);
  }
  return v;
}

size_t HeapInUse() {
  malloc_trim(0);
  return mallinfo2().uordblks;
}

size_t Rss() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

struct Mode {
  const char* name;
  v1::StartSessionRequest request;
};

v1::StartSessionRequest Request(const char* protocol, const char* port_env, v1::Security security,
                                const std::string& ca) {
  v1::ServerEndpoint server;
  server.set_host("127.0.0.1");
  server.set_port(std::atoi(Env(port_env).c_str()));
  server.set_security(security);
  server.mutable_tls()->set_ca_pem(ca);
  v1::Credentials credentials;
  credentials.set_user(Env("MAILPOOL_TEST_USER"));
  credentials.set_password(Env("MAILPOOL_TEST_PASSWORD"));
  credentials.set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  credentials.set_allow_insecure_auth(security == v1::SECURITY_PLAIN);
  v1::StartSessionRequest r;
  std::string p = protocol;
  if (p == "imap") {
    *r.mutable_imap()->mutable_server() = server;
    *r.mutable_imap()->mutable_credentials() = credentials;
  } else if (p == "pop3") {
    *r.mutable_pop3()->mutable_server() = server;
    *r.mutable_pop3()->mutable_credentials() = credentials;
  } else {
    *r.mutable_smtp()->mutable_server() = server;
    *r.mutable_smtp()->mutable_credentials() = credentials;
  }
  return r;
}

bool StartSession(v1::SessionService::Stub& stub, const v1::StartSessionRequest& request,
                  std::string* id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::StartSessionResponse response;
  grpc::Status status = stub.StartSession(&ctx, request, &response);
  if (!status.ok()) {
    fprintf(stderr, "StartSession failed: %s\n", status.error_message().c_str());
    return false;
  }
  *id = response.session().id();
  return true;
}

void CloseSession(v1::SessionService::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::CloseSessionRequest request;
  request.set_session(id);
  v1::CloseSessionResponse response;
  stub.CloseSession(&ctx, request, &response);
}

// Opens n sessions, measures, closes them. Returns {heap bytes/session, rss bytes/session}.
std::pair<double, double> IdleCost(v1::SessionService::Stub& stub,
                                   const v1::StartSessionRequest& request, int n) {
  std::vector<std::string> ids;
  std::string id;
  // Warm up allocator pools and TLS contexts with one session first.
  if (!StartSession(stub, request, &id)) std::exit(1);
  ids.push_back(id);
  size_t heap0 = HeapInUse(), rss0 = Rss();
  for (int i = 0; i < n; ++i) {
    if (!StartSession(stub, request, &id)) break;
    ids.push_back(id);
  }
  size_t heap1 = HeapInUse(), rss1 = Rss();
  int opened = static_cast<int>(ids.size()) - 1;
  for (const std::string& s : ids) CloseSession(stub, s);
  if (opened < n) {
    fprintf(stderr, "only %d of %d sessions opened\n", opened, n);
    std::exit(1);
  }
  return {static_cast<double>(heap1 - heap0) / n, static_cast<double>(rss1 - rss0) / n};
}

}  // namespace

int main(int argc, char** argv) {
  int sessions = argc > 1 ? std::atoi(argv[1]) : 500;
  int starts = argc > 2 ? std::atoi(argv[2]) : 20;
  std::ifstream ca_file(Env("MAILPOOL_TEST_CA"));
  std::string ca((std::istreambuf_iterator<char>(ca_file)), std::istreambuf_iterator<char>());

  mailpool::server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.pool.max_sessions_per_owner = 0;
  options.callers.start_rate_per_caller = 0;  // the benchmark starts hundreds at once
  options.callers.max_calls_per_caller = 0;
  mailpool::server::Server server(options);
  if (!server.Start().ok()) return 1;
  auto stub = v1::SessionService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials()));

  printf("StartSession + CloseSession latency (median / p90 of %d, ms)\n", starts);
  const Mode modes[] = {
      {"imap plain", Request("imap", "MAILPOOL_TEST_IMAP_PORT", v1::SECURITY_PLAIN, ca)},
      {"imap starttls", Request("imap", "MAILPOOL_TEST_IMAP_PORT", v1::SECURITY_STARTTLS, ca)},
      {"imap tls", Request("imap", "MAILPOOL_TEST_IMAPS_PORT", v1::SECURITY_IMPLICIT_TLS, ca)},
      {"pop3 plain", Request("pop3", "MAILPOOL_TEST_POP3_PORT", v1::SECURITY_PLAIN, ca)},
      {"pop3 tls", Request("pop3", "MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS, ca)},
      {"smtp starttls", Request("smtp", "MAILPOOL_TEST_SMTP_PORT", v1::SECURITY_STARTTLS, ca)},
      {"smtp tls", Request("smtp", "MAILPOOL_TEST_SMTPS_PORT", v1::SECURITY_IMPLICIT_TLS, ca)},
  };
  for (const Mode& mode : modes) {
    std::vector<double> start_ms;
    for (int i = 0; i < starts; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      std::string id;
      if (!StartSession(*stub, mode.request, &id)) return 1;
      auto t1 = std::chrono::steady_clock::now();
      CloseSession(*stub, id);
      start_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(start_ms.begin(), start_ms.end());
    printf("  %-14s start %6.2f / %6.2f\n", mode.name, start_ms[start_ms.size() / 2],
           start_ms[start_ms.size() * 9 / 10]);
  }

  printf("\nMemory per idle session (%d sessions, heap in use / resident set, KiB)\n", sessions);
  auto plain = IdleCost(*stub, modes[0].request, sessions);
  auto tls = IdleCost(*stub, modes[2].request, sessions);
  printf("  imap plain (baseline) heap %6.1f  rss %6.1f\n", plain.first / 1024,
         plain.second / 1024);
  printf("  imap tls              heap %6.1f  rss %6.1f\n", tls.first / 1024, tls.second / 1024);
  printf("  TLS adds              heap %6.1f KiB per session (%.2fx the plain session)\n",
         (tls.first - plain.first) / 1024, tls.first / std::max(plain.first, 1.0));
  server.Shutdown();
  return 0;
}
