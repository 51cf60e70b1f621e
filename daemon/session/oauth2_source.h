// OAuth2Source: the access tokens of one session's refreshable OAuth2 credentials.
//
// Holds the refresh token and the OAuth2 client (token endpoint, client ID and secret),
// asks an oauth2::Refresher for an access token when a login needs one and the current
// token is missing or near its end (less than a quarter of its lifetime, at most a
// minute, left), or when the server refused it (Get(fresh=true)), and keeps the answer
// for the next logins. Concurrent Get calls share one refresh. A rotated refresh token
// replaces the old one. Errors are the Refresher's: reason OAUTH2_REFRESH_FAILED,
// UNAUTHENTICATED when the endpoint refused the grant (new credentials needed),
// UNAVAILABLE when it could not be asked.
//
//   auto source = std::make_shared<OAuth2Source>(loop, refresher, client, refresh_token);
//   login.token_source = source;   // session::Link asks it before every login
//
// Loop-confined: Get and the callbacks run on `loop`; the Refresher's answer is posted
// there. The source may be destroyed with a refresh in flight (the answer is dropped).
// May use: oauth2, net (the loop), wire (the interface), common.
#ifndef MAILPOOL_SESSION_OAUTH2_SOURCE_H_
#define MAILPOOL_SESSION_OAUTH2_SOURCE_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "net/event_loop.h"
#include "oauth2/oauth2.h"
#include "wire/protocol.h"

namespace mailpool::session {

class OAuth2Source final : public wire::AccessTokenSource,
                           public std::enable_shared_from_this<OAuth2Source> {
 public:
  // Told of every refresh's outcome: "ok", "refused" (UNAUTHENTICATED) or "unavailable".
  using Observer = std::function<void(absl::string_view result)>;

  OAuth2Source(net::EventLoop& loop, std::shared_ptr<oauth2::Refresher> refresher,
               oauth2::Client client, Secret refresh_token, Observer observer = nullptr,
               const Clock* clock = &Clock::Real());

  void Get(bool fresh, absl::AnyInvocable<void(absl::StatusOr<Secret>)> done) override;

  // Refreshes asked of the endpoint so far (answered or not).
  uint64_t refreshes() const { return refreshes_; }

 private:
  void OnAnswer(absl::StatusOr<oauth2::Token> token);

  net::EventLoop& loop_;
  std::shared_ptr<oauth2::Refresher> refresher_;
  oauth2::Client client_;
  Secret refresh_token_;
  Observer observer_;
  const Clock* clock_;
  Secret access_token_;
  absl::Time renew_at_ = absl::InfinitePast();  // after this, Get asks for a new token
  bool in_flight_ = false;
  std::vector<absl::AnyInvocable<void(absl::StatusOr<Secret>)>> waiting_;
  uint64_t refreshes_ = 0;
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_OAUTH2_SOURCE_H_
