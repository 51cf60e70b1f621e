#include "oauth2/oauth2.h"

#include <curl/curl.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace mailpool::oauth2 {
namespace {

constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kMaxSecret = 8192;

bool IsVschar(char c) { return c >= 0x21 && c <= 0x7e; }

absl::Status FileError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("oauth2 providers file line ", line, ": ", what));
}

// RFC 6749 section 5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E ). Whatever the endpoint
// sent, the text that goes on is sanitized and bounded.
std::string EndpointError(const nlohmann::json& object) {
  std::string out;
  auto error = object.find("error");
  if (error != object.end() && error->is_string()) {
    out = SanitizeServerText(error->get_ref<const std::string&>(), 128);
  }
  auto description = object.find("error_description");
  if (description != object.end() && description->is_string()) {
    absl::StrAppend(&out, out.empty() ? "" : ": ",
                    SanitizeServerText(description->get_ref<const std::string&>(), 256));
  }
  return out;
}

absl::Status RefreshError(absl::StatusCode code, absl::string_view endpoint, absl::string_view what,
                          absl::string_view reply = {}) {
  return MailServerError(code, kRefreshFailedReason,
                         absl::StrCat("OAuth2 token refresh at ", endpoint, " failed: ", what),
                         absl::StrCat("POST ", endpoint, " grant_type=refresh_token"), reply);
}

}  // namespace

absl::Status ValidateTokenEndpoint(absl::string_view field, absl::string_view url) {
  if (url.empty()) return Invalid(field, "required");
  if (url.size() > 2048) return Invalid(field, "longer than 2048 bytes");
  for (char c : url) {
    if (!IsVschar(c)) return Invalid(field, "contains a space or a control byte");
  }
  absl::string_view rest = url;
  bool https = absl::ConsumePrefix(&rest, "https://");
  if (!https && !absl::ConsumePrefix(&rest, "http://")) {
    return Invalid(field, "must be an https:// URL");
  }
  if (absl::StrContains(url, '#')) return Invalid(field, "must not have a fragment");
  size_t end = rest.find_first_of("/?");
  absl::string_view authority = rest.substr(0, end);
  if (absl::StrContains(authority, '@')) {
    return Invalid(field, "must not hold user info (credentials belong in client_secret)");
  }
  absl::string_view host = authority;
  if (absl::StartsWith(host, "[")) {
    size_t close = host.find(']');
    if (close == absl::string_view::npos) return Invalid(field, "unterminated IPv6 literal");
    host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.empty() || host == "[]") return Invalid(field, "has no host");
  absl::string_view port = authority.substr(host.size());
  if (!port.empty()) {
    uint32_t n = 0;
    if (!absl::ConsumePrefix(&port, ":") || !absl::SimpleAtoi(port, &n) || n == 0 || n > 65535 ||
        !absl::ascii_isdigit(port.front())) {
      return Invalid(field, "bad port");
    }
  }
  if (!https && host != "127.0.0.1" && host != "[::1]") {
    return Invalid(field,
                   "must be an https:// URL (http:// is accepted for 127.0.0.1 and [::1] only)");
  }
  return absl::OkStatus();
}

absl::Status ValidateClientId(absl::string_view field, absl::string_view id) {
  if (id.empty()) return Invalid(field, "required");
  if (id.size() > 512) return Invalid(field, "longer than 512 bytes");
  for (char c : id) {
    if (!IsVschar(c)) return Invalid(field, "contains a space or a control byte");
  }
  return absl::OkStatus();
}

absl::Status ValidateScopes(absl::string_view field, absl::string_view scopes) {
  if (scopes.size() > 1024) return Invalid(field, "longer than 1024 bytes");
  // scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
  for (absl::string_view token : absl::StrSplit(scopes, ' ')) {
    if (token.empty() && !scopes.empty()) return Invalid(field, "empty scope (double space?)");
    for (char c : token) {
      if (!IsVschar(c) || c == '"' || c == '\\') {
        return Invalid(field, "a scope holds a byte RFC 6749 does not allow");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretText(absl::string_view field, absl::string_view value) {
  if (value.empty()) return Invalid(field, "empty");
  if (value.size() > kMaxSecret) return Invalid(field, "longer than 8192 bytes");
  for (char c : value) {
    if (!IsVschar(c)) return Invalid(field, "contains a space or a control byte");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Provider>> ParseProvidersFile(
    absl::string_view text,
    absl::AnyInvocable<absl::StatusOr<std::string>(const std::string& path)> read_file) {
  std::vector<Provider> out;
  struct Seen {
    int line = 0;
    bool endpoint = false;
    bool id = false;
  } seen;
  auto finish = [&]() -> absl::Status {
    if (out.empty()) return absl::OkStatus();
    if (!seen.endpoint) return FileError(seen.line, "provider has no token_endpoint");
    if (!seen.id) return FileError(seen.line, "provider has no client_id");
    return absl::OkStatus();
  };
  int number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++number;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      if (line.back() != ']') return FileError(number, "a section is [name]");
      std::string name(absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      if (name.empty() || name.size() > 64) return FileError(number, "name must be 1..64 bytes");
      for (char c : name) {
        if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
          return FileError(number, "name may hold only letters, digits, '.', '_', '-'");
        }
      }
      for (const Provider& p : out) {
        if (p.name == name) return FileError(number, absl::StrCat("duplicate provider ", name));
      }
      MP_RETURN_IF_ERROR(finish());
      out.push_back(Provider{name, {}});
      seen = Seen{number};
      continue;
    }
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) return FileError(number, "expected key = value");
    if (out.empty()) return FileError(number, "key before the first [provider] section");
    std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    Client& client = out.back().client;
    absl::Status status;
    if (key == "token_endpoint") {
      status = ValidateTokenEndpoint("token_endpoint", value);
      client.token_endpoint = value;
      seen.endpoint = true;
    } else if (key == "client_id") {
      status = ValidateClientId("client_id", value);
      client.client_id = value;
      seen.id = true;
    } else if (key == "client_secret_file") {
      if (value.empty()) {
        status = Invalid("client_secret_file", "empty path");
      } else {
        absl::StatusOr<std::string> secret = read_file(value);
        if (!secret.ok()) {
          status = Invalid("client_secret_file",
                           absl::StrCat("cannot read ", value, ": ", secret.status().message()));
        } else {
          absl::string_view s = *secret;
          absl::ConsumeSuffix(&s, "\n");
          absl::ConsumeSuffix(&s, "\r");
          status = ValidateSecretText(absl::StrCat("client secret in ", value), s);
          client.client_secret = Secret(s);
          WipeString(*secret);
        }
      }
    } else if (key == "scopes") {
      status = ValidateScopes("scopes", value);
      client.scopes = value;
    } else if (key == "client_auth") {
      if (value == "post") {
        client.auth = ClientAuth::kPost;
      } else if (value == "basic") {
        client.auth = ClientAuth::kBasic;
      } else {
        status = Invalid("client_auth", "must be post or basic");
      }
    } else {
      status = absl::InvalidArgumentError(absl::StrCat("unknown key '", key, "'"));
    }
    if (!status.ok()) return FileError(number, status.message());
  }
  MP_RETURN_IF_ERROR(finish());
  return out;
}

absl::StatusOr<std::vector<Provider>> LoadProvidersFile(const std::string& path) {
  auto read = [](const std::string& p) -> absl::StatusOr<std::string> {
    std::ifstream in(p, std::ios::binary);
    if (!in) return absl::NotFoundError("no such file or not readable");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  };
  absl::StatusOr<std::string> text = read(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("oauth2 providers file ", path, ": ", text.status().message()));
  }
  return ParseProvidersFile(*text, read);
}

absl::StatusOr<Token> ParseTokenResponse(long http_status, absl::string_view body,
                                         absl::string_view endpoint) {
  nlohmann::json json = nlohmann::json::parse(body.begin(), body.end(), nullptr,
                                              /*allow_exceptions=*/false);
  bool object = !json.is_discarded() && json.is_object();
  if (http_status != 200) {
    std::string reply = object ? EndpointError(json) : std::string();
    // RFC 6749 section 5.2: 400 (or 401 for a client that failed to authenticate) with an
    // error object is a refusal; anything else is the endpoint failing.
    if ((http_status == 400 || http_status == 401) && !reply.empty()) {
      return RefreshError(
          absl::StatusCode::kUnauthenticated, endpoint,
          absl::StrCat("the endpoint refused the grant (HTTP ", http_status, ", ", reply, ")"),
          reply);
    }
    return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                        absl::StrCat("HTTP ", http_status, reply.empty() ? "" : " (", reply,
                                     reply.empty() ? "" : ")"),
                        reply);
  }
  if (!object) {
    return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                        "the answer (HTTP 200) is not a JSON object");
  }
  if (json.contains("error")) {
    std::string reply = EndpointError(json);
    return RefreshError(absl::StatusCode::kUnauthenticated, endpoint,
                        absl::StrCat("the endpoint refused the grant (", reply, ")"), reply);
  }
  Token token;
  auto access = json.find("access_token");
  if (access == json.end() || !access->is_string()) {
    return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                        "the answer has no access_token string");
  }
  const std::string& value = access->get_ref<const std::string&>();
  if (value.empty() || value.size() > kMaxSecret) {
    return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                        "the access_token is empty or longer than 8192 bytes");
  }
  for (char c : value) {
    if (!IsVschar(c)) {
      return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                          "the access_token holds a space or a control byte");
    }
  }
  auto type = json.find("token_type");
  if (type != json.end()) {
    if (!type->is_string() ||
        !absl::EqualsIgnoreCase(type->get_ref<const std::string&>(), "bearer")) {
      return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                          "token_type is not Bearer (only bearer tokens work for XOAUTH2 and "
                          "OAUTHBEARER)");
    }
  }
  auto expires = json.find("expires_in");
  if (expires != json.end() && !expires->is_null()) {
    double seconds = -1;
    if (expires->is_number()) {
      seconds = expires->get<double>();
    } else if (expires->is_string()) {
      // Some endpoints send it as a string of digits.
      int64_t n = 0;
      if (absl::SimpleAtoi(expires->get_ref<const std::string&>(), &n)) seconds = n;
    }
    if (!(seconds >= 0)) {
      return RefreshError(absl::StatusCode::kUnavailable, endpoint,
                          "expires_in is not a non-negative number");
    }
    // Ten years at most: a bigger value is as good as "does not expire".
    token.expires_in = absl::Seconds(std::min(seconds, 10.0 * 365 * 86400));
  }
  auto refresh = json.find("refresh_token");
  if (refresh != json.end() && refresh->is_string()) {
    const std::string& r = refresh->get_ref<const std::string&>();
    if (ValidateSecretText("refresh_token", r).ok()) token.refresh_token = Secret(r);
  }
  auto scope = json.find("scope");
  if (scope != json.end() && scope->is_string()) {
    token.scope = SanitizeServerText(scope->get_ref<const std::string&>(), 1024);
  }
  token.access_token = Secret(value);
  // The DOM held copies of the secrets: wipe them before it goes.
  WipeString(access->get_ref<std::string&>());
  if (refresh != json.end() && refresh->is_string()) WipeString(refresh->get_ref<std::string&>());
  return token;
}

std::string FormEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string RefreshRequestBody(const Client& client, const Secret& refresh_token) {
  std::string body = "grant_type=refresh_token&refresh_token=";
  std::string encoded = FormEncode(refresh_token.Reveal());
  body += encoded;
  WipeString(encoded);
  if (!client.scopes.empty()) absl::StrAppend(&body, "&scope=", FormEncode(client.scopes));
  if (client.auth == ClientAuth::kPost) {
    absl::StrAppend(&body, "&client_id=", FormEncode(client.client_id));
    if (!client.client_secret.empty()) {
      std::string secret = FormEncode(client.client_secret.Reveal());
      absl::StrAppend(&body, "&client_secret=", secret);
      WipeString(secret);
    }
  }
  return body;
}

// --- Refresher ------------------------------------------------------------------------------

struct Refresher::Impl {
  struct Job {
    Client client;
    Secret refresh_token;
    Done done;
  };

  explicit Impl(Options o) : options(std::move(o)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    worker = std::thread([this] { Run(); });
  }

  ~Impl() {
    std::deque<Job> left;
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
      left.swap(jobs);
    }
    cv.notify_all();
    worker.join();
    for (Job& job : left) job.done(absl::CancelledError("the daemon is shutting down"));
  }

  void Run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [this] { return stopping || !jobs.empty(); });
        if (stopping) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      absl::StatusOr<Token> result = Post(job.client, job.refresh_token);
      job.done(std::move(result));
    }
  }

  static size_t Write(char* data, size_t size, size_t n, void* user) {
    auto* body = static_cast<std::string*>(user);
    size_t bytes = size * n;
    if (body->size() + bytes > kMaxBody) return 0;  // aborts the transfer
    body->append(data, bytes);
    return bytes;
  }

  absl::StatusOr<Token> Post(const Client& client, const Secret& refresh_token) {
    const std::string& endpoint = client.token_endpoint;
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return RefreshError(absl::StatusCode::kUnavailable, endpoint, "curl init failed");
    std::string form = RefreshRequestBody(client, refresh_token);
    std::string body;
    std::string userpwd;
    char error[CURL_ERROR_SIZE] = {0};
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, endpoint.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mailpool");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(form.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Impl::Write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    if (client.auth == ClientAuth::kBasic) {
      // RFC 6749 section 2.3.1: the id and secret are form-encoded before Basic encoding.
      userpwd = absl::StrCat(FormEncode(client.client_id), ":",
                             FormEncode(client.client_secret.Reveal()));
      curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str());
    }
    CURLcode code = curl_easy_perform(c);
    long http_status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_status);
    curl.reset();
    curl_slist_free_all(headers);
    WipeString(form);
    WipeString(userpwd);
    absl::StatusOr<Token> result;
    if (code != CURLE_OK) {
      std::string why = error[0] != 0 ? error : curl_easy_strerror(code);
      if (code == CURLE_WRITE_ERROR) why = "the answer is longer than 65536 bytes";
      result = RefreshError(absl::StatusCode::kUnavailable, endpoint, SanitizeServerText(why));
    } else {
      result = ParseTokenResponse(http_status, body, endpoint);
    }
    WipeString(body);
    if (!result.ok()) {
      // An endpoint may echo what it was sent.
      absl::Status s = RedactSecret(result.status(), refresh_token.Reveal());
      s = RedactSecret(s, client.client_secret.Reveal());
      return s;
    }
    return result;
  }

  Options options;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  std::thread worker;
};

Refresher::Refresher(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Refresher::~Refresher() = default;

void Refresher::Refresh(Client client, Secret refresh_token, Done done) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->stopping && impl_->jobs.size() < impl_->options.max_queue) {
      impl_->jobs.push_back(
          Impl::Job{std::move(client), std::move(refresh_token), std::move(done)});
      impl_->cv.notify_one();
      return;
    }
  }
  done(RefreshError(absl::StatusCode::kUnavailable, client.token_endpoint,
                    "too many token refreshes are waiting"));
}

}  // namespace mailpool::oauth2
