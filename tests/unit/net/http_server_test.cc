// net::HttpServer: one bounded request per connection, answered and closed.
#include "net/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::net {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    loop_.RunSync([this] {
      auto http = HttpServer::Listen(loop_, "127.0.0.1:0", [this](absl::string_view path) {
        ++handled_;
        if (path != "/metrics") return HttpResponse{404, "text/plain", "nope\n"};
        return HttpResponse{200, "text/plain; version=0.0.4", "up 1\n"};
      });
      ASSERT_TRUE(http.ok()) << http.status();
      http_ = *std::move(http);
    });
  }
  void TearDown() override {
    loop_.RunSync([this] { http_.reset(); });
    loop_.Stop();
  }

  // Connects, sends `request` in pieces of `chunk` bytes, half-closes, and reads until
  // the server closes.
  std::string Exchange(const std::string& request, size_t chunk = 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(http_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (chunk == 0) chunk = request.size();
    for (size_t i = 0; i < request.size(); i += chunk) {
      std::string piece = request.substr(i, chunk);
      if (send(fd, piece.data(), piece.size(), MSG_NOSIGNAL) < 0) break;  // server closed
    }
    shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  }

  EventLoop loop_;
  std::unique_ptr<HttpServer> http_;
  int handled_ = 0;  // touched on the loop only; read after RunSync
};

TEST_F(HttpServerTest, AnswersGetWithTheHandlersBodyAndCloses) {
  std::string reply = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Type: text/plain; version=0.0.4\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(reply, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(reply, EndsWith("\r\n\r\nup 1\n"));
}

TEST_F(HttpServerTest, RequestArrivingOneByteAtATimeIsAnswered) {
  std::string reply = Exchange("GET /metrics?x=1 HTTP/1.0\r\n\r\n", 1);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, EndsWith("up 1\n"));
}

TEST_F(HttpServerTest, HeadGetsHeadersWithoutBody) {
  std::string reply = Exchange("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, EndsWith("\r\n\r\n"));
}

TEST_F(HttpServerTest, OtherPathsAreTheHandlersToRefuse) {
  EXPECT_THAT(Exchange("GET /other HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
}

TEST_F(HttpServerTest, OtherMethodsAre405WithoutCallingTheHandler) {
  std::string reply = Exchange("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(reply, HasSubstr("Allow: GET, HEAD\r\n"));
  int handled = -1;
  loop_.RunSync([&] { handled = handled_; });
  EXPECT_EQ(handled, 0);
}

TEST_F(HttpServerTest, MalformedRequestLinesAre400) {
  EXPECT_THAT(Exchange("hello\r\n\r\n"), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(Exchange("GET metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange("GET /metrics SPDY/3\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange("GET  /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
}

TEST_F(HttpServerTest, OversizedRequestHeadIs400) {
  // A head that never ends, one byte past the 8 KiB limit (no more: bytes the server
  // never reads would make its close a reset that can eat the answer).
  std::string request = "GET /metrics HTTP/1.1\r\nX-Fill: ";
  request.append(8 * 1024 + 1 - request.size(), 'a');
  std::string reply = Exchange(request);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(reply, HasSubstr("too large"));
}

TEST_F(HttpServerTest, PeerClosingEarlyGetsNothingAndServerKeepsServing) {
  EXPECT_EQ(Exchange(""), "");  // half-closed without a request: closed without an answer
  EXPECT_THAT(Exchange("GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST(HttpServerListenTest, BadAddressesAreInvalidArgument) {
  EventLoop loop;
  loop.Start();
  for (const char* address : {"nohost", "127.0.0.1:99999", "example.org:80", "127.0.0.1:x"}) {
    absl::StatusCode code = absl::StatusCode::kOk;
    loop.RunSync([&] { code = HttpServer::Listen(loop, address, nullptr).status().code(); });
    EXPECT_EQ(code, absl::StatusCode::kInvalidArgument) << address;
  }
  loop.Stop();
}

TEST(HttpServerListenTest, BusyPortIsUnavailable) {
  EventLoop loop;
  loop.Start();
  loop.RunSync([&] {
    auto first = HttpServer::Listen(loop, "127.0.0.1:0", nullptr);
    ASSERT_TRUE(first.ok());
    auto second =
        HttpServer::Listen(loop, "127.0.0.1:" + std::to_string((*first)->port()), nullptr);
    EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  });
  loop.Stop();
}

}  // namespace
}  // namespace mailpool::net
