#include "callers/callers.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"

namespace mailpool::callers {
namespace {

std::string Sha256(absl::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@';
  });
}

absl::Status Unauthenticated(absl::string_view reason, absl::string_view what) {
  return ReasonError(absl::StatusCode::kUnauthenticated, reason, what);
}

absl::Status Exhausted(absl::string_view reason, absl::string_view what, absl::Duration retry) {
  absl::Status status = ReasonError(absl::StatusCode::kResourceExhausted, reason, what);
  status.SetPayload(kRetryAfterPayload,
                    absl::Cord(absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(retry)))));
  return status;
}

}  // namespace

std::string Sha256Hex(absl::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : Sha256(text)) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view text,
                                                       absl::string_view origin) {
  std::vector<TokenEntry> out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    absl::string_view content = line.substr(0, line.find('#'));
    std::vector<absl::string_view> fields =
        absl::StrSplit(content, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", number, ": ", what));
    };
    if (fields.size() < 2 || fields.size() > 3) {
      return bad("expected `NAME SHA256-HEX [admin]`");
    }
    if (!ValidName(fields[0])) {
      return bad("NAME must be 1-64 letters, digits, '.', '_', '-' or '@'");
    }
    if (fields[1].size() != 64 ||
        !std::all_of(fields[1].begin(), fields[1].end(),
                     [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); })) {
      return bad("the second field must be the 64 hex digits of the token's SHA-256");
    }
    std::string digest = absl::HexStringToBytes(fields[1]);
    if (fields.size() == 3 && fields[2] != "admin") return bad("the third field may only be `admin`");
    for (const TokenEntry& e : out) {
      if (e.name == fields[0]) return bad(absl::StrCat("caller ", fields[0], " appears twice"));
      if (e.digest == digest) return bad("the same token appears twice");
    }
    out.push_back({std::string(fields[0]), std::move(digest), fields.size() == 3});
  }
  return out;
}

Callers::Callers(CallersOptions options) : options_(std::move(options)) {}
Callers::~Callers() = default;

absl::Status Callers::Load() {
  if (options_.tokens_file.empty()) return absl::OkStatus();
  std::ifstream in(options_.tokens_file);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the caller tokens file ", options_.tokens_file));
  }
  std::stringstream text;
  text << in.rdbuf();
  MP_ASSIGN_OR_RETURN(std::vector<TokenEntry> entries,
                      ParseTokenFile(text.str(), options_.tokens_file));
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(entries);
  return absl::OkStatus();
}

bool Callers::authentication_required() const {
  return !options_.tokens_file.empty() || options_.client_certificates;
}

size_t Callers::token_count() const {
  absl::MutexLock lock(&mu_);
  return tokens_.size();
}

absl::StatusOr<Caller> Callers::Identify(const CallFacts& facts) const {
  if (facts.has_authorization) {
    absl::string_view value = absl::StripAsciiWhitespace(facts.authorization);
    constexpr absl::string_view kScheme = "bearer ";
    if (value.size() <= kScheme.size() ||
        !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
      return Unauthenticated("BAD_CALLER_TOKEN",
                             "the authorization header must be `Bearer <token>`");
    }
    std::string digest = Sha256(absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size())));
    absl::MutexLock lock(&mu_);
    // Every entry is compared, in constant time, whatever matches.
    const TokenEntry* found = nullptr;
    for (const TokenEntry& e : tokens_) {
      if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) found = &e;
    }
    if (found == nullptr) return Unauthenticated("BAD_CALLER_TOKEN", "unknown caller token");
    return Caller{found->name, found->admin};
  }
  if (absl::StartsWith(facts.peer, "fd:")) {
    int fd = -1;
    absl::MutexLock lock(&mu_);
    auto it = absl::SimpleAtoi(facts.peer.substr(3), &fd) ? unix_peers_.find(fd) : unix_peers_.end();
    if (it == unix_peers_.end()) {
      return Unauthenticated("UNKNOWN_PEER", "the Unix-socket peer is not known");
    }
    uid_t uid = it->second;
    return Caller{absl::StrCat("uid:", uid), uid == 0 || uid == geteuid()};
  }
  if (!facts.cert_common_name.empty()) return Caller{absl::StrCat("cert:", facts.cert_common_name)};
  if (!facts.cert_uri.empty()) return Caller{absl::StrCat("cert:", facts.cert_uri)};
  if (authentication_required()) {
    return Unauthenticated("CALLER_TOKEN_REQUIRED",
                           "this daemon requires a caller token (authorization: Bearer <token>) "
                           "or a client certificate");
  }
  return Caller{kLocal};
}

void Callers::NoteUnixPeer(int fd, uid_t uid) {
  absl::MutexLock lock(&mu_);
  unix_peers_[fd] = uid;
}

void Callers::Enter(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ++in_flight_[name];
}

void Callers::Leave(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(name);
  if (it != in_flight_.end() && --it->second <= 0) in_flight_.erase(it);
}

absl::Status Callers::Admit(const Caller& caller) const {
  if (options_.max_calls_per_caller <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(caller.name);
  if (it == in_flight_.end() || it->second <= options_.max_calls_per_caller) {
    return absl::OkStatus();
  }
  return Exhausted("TOO_MANY_CALLS",
                   absl::StrCat("at most ", options_.max_calls_per_caller,
                                " calls in flight per caller"),
                   absl::Milliseconds(100));
}

absl::Status Callers::TakeStart(const Caller& caller) {
  if (options_.start_rate_per_caller <= 0) return absl::OkStatus();
  double burst = std::max(1, options_.start_burst_per_caller);
  absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = buckets_.try_emplace(caller.name, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + absl::ToDoubleSeconds(now - b.last) *
                                              options_.start_rate_per_caller);
    b.last = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::OkStatus();
  }
  absl::Duration wait = absl::Seconds((1 - b.tokens) / options_.start_rate_per_caller);
  return Exhausted("START_RATE_EXCEEDED",
                   absl::StrCat("at most ", options_.start_rate_per_caller,
                                " session starts per second per caller (burst ",
                                options_.start_burst_per_caller, ")"),
                   wait);
}

absl::StatusOr<std::shared_ptr<const void>> Callers::ReserveMessageBytes(size_t bytes) const {
  size_t budget = options_.max_inflight_message_bytes;
  std::shared_ptr<std::atomic<size_t>> total = message_bytes_;
  size_t now = total->load();
  do {
    if (budget > 0 && now > 0 && now + bytes > budget) {
      return Exhausted("MEMORY_BUDGET",
                       absl::StrCat("the daemon holds ", now >> 20, " MiB of messages in calls "
                                    "in flight; this one needs ", bytes >> 20, " MiB more than "
                                    "the budget of ", budget >> 20,
                                    " MiB allows (--max_inflight_message_bytes)"),
                       absl::Seconds(1));
    }
  } while (!total->compare_exchange_weak(now, now + bytes));
  return std::shared_ptr<const void>(nullptr, [total, bytes](const void*) { *total -= bytes; });
}

}  // namespace mailpool::callers
