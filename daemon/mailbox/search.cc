#include "mailbox/search.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace mailpool::mailbox {
namespace {

absl::Status Invalid(absl::string_view what) { return ::mailpool::Invalid("criteria", what); }

bool HasControl(absl::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

constexpr size_t kMaxText = 1024;

bool OnlySeen(const v1::Flags& f) {
  return !(f.answered() || f.flagged() || f.deleted() || f.draft() || f.recent() ||
           f.keywords_size() > 0);
}

absl::Status Validate(const v1::SearchCriteria& c, bool pop3, int depth, int* count) {
  if (depth > kMaxCriteriaDepth) {
    return Invalid(absl::StrCat("nested more than ", kMaxCriteriaDepth, " levels deep"));
  }
  if (++*count > kMaxCriteria)
    return Invalid(absl::StrCat("more than ", kMaxCriteria, " criteria"));
  for (const std::string* text : {&c.subject(), &c.from(), &c.to(), &c.cc(), &c.bcc(),
                                  &c.recipient(), &c.body(), &c.text(), &c.message_id()}) {
    if (text->size() > kMaxText) return Invalid(absl::StrCat("a text is longer than ", kMaxText));
    if (HasControl(*text)) return Invalid("a text contains CR, LF or NUL");
  }
  if (c.headers_size() > 50) return Invalid("more than 50 header matches");
  for (const v1::HeaderMatch& h : c.headers()) {
    if (h.name().empty() || h.name().size() > 76) return Invalid("headers.name: 1 to 76 bytes");
    for (char ch : h.name()) {
      if (ch <= 0x20 || ch >= 0x7f || ch == ':') {
        return Invalid("headers.name: printable ASCII without ':' or spaces");
      }
    }
    if (h.value().size() > kMaxText || HasControl(h.value())) {
      return Invalid("headers.value: too long or contains CR, LF or NUL");
    }
  }
  for (const auto* ts : {&c.since(), &c.before(), &c.sent_since(), &c.sent_before()}) {
    if (ts->seconds() < -62135596800 || ts->seconds() > 253402300799 || ts->nanos() < 0 ||
        ts->nanos() > 999999999) {
      return Invalid("a timestamp is out of range");
    }
  }
  // On POP3 `unread` and `seen` are this session's record of what it retrieved
  // (mailbox.proto).
  if (pop3) {
    if ((c.has_flags_set() && !OnlySeen(c.flags_set())) ||
        (c.has_flags_unset() && !OnlySeen(c.flags_unset()))) {
      return ReasonError(absl::StatusCode::kFailedPrecondition, "POP3_UNSUPPORTED",
                         "criteria: POP3 has no flags except this session's own \"seen\" "
                         "record; flag searches need IMAP");
    }
  }
  for (const auto* list : {&c.all_of(), &c.any_of(), &c.none_of()}) {
    for (const v1::SearchCriteria& sub : *list) {
      MP_RETURN_IF_ERROR(Validate(sub, pop3, depth + 1, count));
    }
  }
  return absl::OkStatus();
}

void AddNeeds(const v1::SearchCriteria& c, Needs* n) {
  if (!c.subject().empty() || !c.from().empty() || !c.to().empty() || !c.cc().empty() ||
      !c.bcc().empty() || !c.recipient().empty() || c.headers_size() > 0 ||
      !c.message_id().empty() || c.has_since() || c.has_before() || c.has_sent_since() ||
      c.has_sent_before()) {
    n->headers = true;
  }
  if (!c.body().empty() || !c.text().empty()) {
    n->headers = true;
    n->bodies = true;
  }
  for (const auto* list : {&c.all_of(), &c.any_of(), &c.none_of()}) {
    for (const v1::SearchCriteria& sub : *list) AddNeeds(sub, n);
  }
}

bool AddressMatches(const v1::Address& a, absl::string_view needle) {
  return ContainsIgnoreCase(a.name(), needle) || ContainsIgnoreCase(a.address(), needle);
}

template <typename List>
bool AnyAddressMatches(const List& list, absl::string_view needle) {
  for (const v1::Address& a : list) {
    if (AddressMatches(a, needle)) return true;
  }
  return false;
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool HeadersContain(const v1::EmailMessage& m, absl::string_view needle) {
  if (ContainsIgnoreCase(m.subject(), needle) || AddressMatches(m.from(), needle) ||
      AnyAddressMatches(m.to(), needle) || AnyAddressMatches(m.cc(), needle) ||
      AnyAddressMatches(m.bcc(), needle) || AnyAddressMatches(m.reply_to(), needle) ||
      ContainsIgnoreCase(m.message_id(), needle)) {
    return true;
  }
  for (const v1::Header& h : m.headers()) {
    if (ContainsIgnoreCase(h.value(), needle)) return true;
  }
  return false;
}

bool BodiesContain(const v1::EmailMessage& m, absl::string_view needle) {
  return ContainsIgnoreCase(m.text_body(), needle) || ContainsIgnoreCase(m.html_body(), needle);
}

absl::string_view StripAngles(absl::string_view id) {
  id = absl::StripAsciiWhitespace(id);
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return id;
}

}  // namespace

bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (absl::EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

absl::Status ValidateCriteria(const v1::SearchCriteria& criteria, bool pop3) {
  int count = 0;
  return Validate(criteria, pop3, 1, &count);
}

Needs NeedsOf(const v1::SearchCriteria& criteria) {
  Needs n;
  AddNeeds(criteria, &n);
  return n;
}

bool Matches(const v1::SearchCriteria& c, const MessageFacts& f) {
  static const v1::EmailMessage kEmpty;
  const v1::EmailMessage& h = f.headers ? *f.headers : (f.full ? *f.full : kEmpty);
  if (!ContainsIgnoreCase(h.subject(), c.subject())) return false;
  if (!c.from().empty() && !AddressMatches(h.from(), c.from())) return false;
  if (!c.to().empty() && !AnyAddressMatches(h.to(), c.to())) return false;
  if (!c.cc().empty() && !AnyAddressMatches(h.cc(), c.cc())) return false;
  if (!c.bcc().empty() && !AnyAddressMatches(h.bcc(), c.bcc())) return false;
  if (!c.recipient().empty() && !AnyAddressMatches(h.to(), c.recipient()) &&
      !AnyAddressMatches(h.cc(), c.recipient()) && !AnyAddressMatches(h.bcc(), c.recipient())) {
    return false;
  }
  for (const v1::HeaderMatch& m : c.headers()) {
    bool found = false;
    for (const v1::Header& header : h.headers()) {
      if (absl::EqualsIgnoreCase(header.name(), m.name()) &&
          ContainsIgnoreCase(header.value(), m.value())) {
        found = true;
        break;
      }
    }
    // Fields with a dedicated model field are not in `headers`.
    if (!found && absl::EqualsIgnoreCase(m.name(), "Subject")) {
      found = ContainsIgnoreCase(h.subject(), m.value());
    } else if (!found && absl::EqualsIgnoreCase(m.name(), "From")) {
      found = h.has_from() && AddressMatches(h.from(), m.value());
    } else if (!found && absl::EqualsIgnoreCase(m.name(), "To")) {
      found = h.to_size() > 0 && AnyAddressMatches(h.to(), m.value());
    } else if (!found && absl::EqualsIgnoreCase(m.name(), "Cc")) {
      found = h.cc_size() > 0 && AnyAddressMatches(h.cc(), m.value());
    } else if (!found && absl::EqualsIgnoreCase(m.name(), "Message-ID")) {
      found = !h.message_id().empty() && ContainsIgnoreCase(h.message_id(), m.value());
    }
    if (!found) return false;
  }
  if (!c.message_id().empty() && StripAngles(c.message_id()) != h.message_id()) return false;
  if (c.has_since() || c.has_before()) {
    absl::optional<absl::Time> received = ReceiveTimeOf(h);
    if (!received) return false;
    if (c.has_since() && *received < ToTime(c.since())) return false;
    if (c.has_before() && *received >= ToTime(c.before())) return false;
  }
  if (c.has_sent_since() || c.has_sent_before()) {
    if (!h.has_date()) return false;
    absl::Time sent = ToTime(h.date());
    if (c.has_sent_since() && sent < ToTime(c.sent_since())) return false;
    if (c.has_sent_before() && sent >= ToTime(c.sent_before())) return false;
  }
  if (c.larger() != 0 && !(f.size > c.larger())) return false;
  if (c.smaller() != 0 && !(f.size < c.smaller())) return false;
  if (c.has_flags_set() && c.flags_set().seen() && !f.seen) return false;
  if (c.has_flags_unset() && c.flags_unset().seen() && f.seen) return false;
  if (c.unread() && f.seen) return false;
  if (!c.body().empty() && !(f.full && BodiesContain(*f.full, c.body()))) return false;
  if (!c.text().empty() && !HeadersContain(h, c.text()) &&
      !(f.full && BodiesContain(*f.full, c.text()))) {
    return false;
  }
  for (const v1::SearchCriteria& sub : c.all_of()) {
    if (!Matches(sub, f)) return false;
  }
  if (c.any_of_size() > 0) {
    bool any = false;
    for (const v1::SearchCriteria& sub : c.any_of()) {
      if (Matches(sub, f)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  for (const v1::SearchCriteria& sub : c.none_of()) {
    if (Matches(sub, f)) return false;
  }
  return true;
}

absl::optional<absl::Time> ParseMailDate(absl::string_view text) {
  std::string s(absl::StripAsciiWhitespace(text.substr(0, 200)));
  size_t comment = s.find('(');
  if (comment != std::string::npos) s.resize(comment);
  // Collapse runs of white space (folded Received fields).
  std::string t;
  for (char c : s) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (!t.empty() && t.back() != ' ') t.push_back(' ');
    } else {
      t.push_back(c);
    }
  }
  while (!t.empty() && t.back() == ' ') t.pop_back();
  for (const char* format : {"%a, %d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M:%S %z",
                             "%a, %d %b %Y %H:%M %z", "%d %b %Y %H:%M %z"}) {
    absl::Time time;
    std::string err;
    if (absl::ParseTime(format, t, &time, &err)) return time;
  }
  return absl::nullopt;
}

absl::optional<absl::Time> ReceiveTimeOf(const v1::EmailMessage& headers) {
  for (const v1::Header& h : headers.headers()) {
    if (!absl::EqualsIgnoreCase(h.name(), "Received")) continue;
    size_t semi = h.value().rfind(';');
    if (semi == std::string::npos) return absl::nullopt;
    return ParseMailDate(absl::string_view(h.value()).substr(semi + 1));
  }
  return absl::nullopt;
}

}  // namespace mailpool::mailbox
