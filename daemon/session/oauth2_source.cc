#include "session/oauth2_source.h"

#include <algorithm>
#include <utility>

namespace mailpool::session {

OAuth2Source::OAuth2Source(net::EventLoop& loop, std::shared_ptr<oauth2::Refresher> refresher,
                           oauth2::Client client, Secret refresh_token, Observer observer,
                           const Clock* clock)
    : loop_(loop),
      refresher_(std::move(refresher)),
      client_(std::move(client)),
      refresh_token_(std::move(refresh_token)),
      observer_(std::move(observer)),
      clock_(clock) {}

void OAuth2Source::Get(bool fresh, absl::AnyInvocable<void(absl::StatusOr<Secret>)> done) {
  if (!fresh && !in_flight_ && !access_token_.empty() && clock_->Now() < renew_at_) {
    return done(access_token_);
  }
  waiting_.push_back(std::move(done));
  if (in_flight_) return;
  in_flight_ = true;
  ++refreshes_;
  std::weak_ptr<OAuth2Source> weak = weak_from_this();
  net::EventLoop& loop = loop_;
  refresher_->Refresh(client_, refresh_token_, [weak, &loop](absl::StatusOr<oauth2::Token> t) {
    // On the Refresher's worker thread (or here, for a request refused at once).
    loop.Post([weak, t = std::move(t)]() mutable {
      if (std::shared_ptr<OAuth2Source> self = weak.lock()) self->OnAnswer(std::move(t));
    });
  });
}

void OAuth2Source::OnAnswer(absl::StatusOr<oauth2::Token> token) {
  in_flight_ = false;
  if (observer_) {
    observer_(token.ok()                                                    ? "ok"
              : token.status().code() == absl::StatusCode::kUnauthenticated ? "refused"
                                                                            : "unavailable");
  }
  absl::StatusOr<Secret> answer = Secret();
  if (token.ok()) {
    access_token_ = std::move(token->access_token);
    if (!token->refresh_token.empty()) refresh_token_ = std::move(token->refresh_token);
    absl::Duration life = token->expires_in;
    // No lifetime given: kept until a server refuses it.
    renew_at_ = life <= absl::ZeroDuration()
                    ? absl::InfiniteFuture()
                    : clock_->Now() + life - std::min(life / 4, absl::Minutes(1));
    answer = access_token_;
  } else {
    answer = token.status();
    access_token_.Wipe();
    renew_at_ = absl::InfinitePast();
  }
  std::vector<absl::AnyInvocable<void(absl::StatusOr<Secret>)>> waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& done : waiting) done(answer);
}

}  // namespace mailpool::session
