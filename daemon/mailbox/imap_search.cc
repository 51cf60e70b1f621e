#include "mailbox/imap_search.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "mailbox/imap_support.h"
#include "mailbox/search.h"

namespace mailpool::mailbox {
namespace {

using imap::SearchArg;
using Args = std::vector<SearchArg>;

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

bool IsSet(const google::protobuf::Timestamp& ts) { return ts.seconds() != 0 || ts.nanos() != 0; }

// search-key = ... "SUBJECT" SP astring ...
void Key(Args* out, const char* key, const std::string& value) {
  out->push_back(SearchArg::Atom(key));
  out->push_back(SearchArg::String(value));
}

void AddFlags(Args* out, const v1::Flags& flags, bool set) {
  if (flags.seen()) out->push_back(SearchArg::Atom(set ? "SEEN" : "UNSEEN"));
  if (flags.answered()) out->push_back(SearchArg::Atom(set ? "ANSWERED" : "UNANSWERED"));
  if (flags.flagged()) out->push_back(SearchArg::Atom(set ? "FLAGGED" : "UNFLAGGED"));
  if (flags.deleted()) out->push_back(SearchArg::Atom(set ? "DELETED" : "UNDELETED"));
  if (flags.draft()) out->push_back(SearchArg::Atom(set ? "DRAFT" : "UNDRAFT"));
  if (flags.recent()) out->push_back(SearchArg::Atom(set ? "RECENT" : "OLD"));
  for (const std::string& k : flags.keywords()) {
    out->push_back(SearchArg::Atom(set ? "KEYWORD" : "UNKEYWORD"));
    out->push_back(SearchArg::Atom(k));
  }
}

// IMAP numbers are 32-bit.
std::string Number(uint64_t n) { return absl::StrCat(n > 0xffffffffu ? 0xffffffffu : n); }

// One group of search keys, AND-ed. `top`: date bounds are widened (refined later).
void Translate(const v1::SearchCriteria& c, bool top, Args* out) {
  size_t start = out->size();
  if (!c.subject().empty()) Key(out, "SUBJECT", c.subject());
  if (!c.from().empty()) Key(out, "FROM", c.from());
  if (!c.to().empty()) Key(out, "TO", c.to());
  if (!c.cc().empty()) Key(out, "CC", c.cc());
  if (!c.bcc().empty()) Key(out, "BCC", c.bcc());
  if (!c.recipient().empty()) {
    // OR TO x (OR CC x BCC x)
    out->push_back(SearchArg::Atom("OR"));
    Key(out, "TO", c.recipient());
    out->push_back(SearchArg::Atom("OR"));
    Key(out, "CC", c.recipient());
    Key(out, "BCC", c.recipient());
  }
  if (!c.body().empty()) Key(out, "BODY", c.body());
  if (!c.text().empty()) Key(out, "TEXT", c.text());
  for (const v1::HeaderMatch& h : c.headers()) {
    out->push_back(SearchArg::Atom("HEADER"));
    out->push_back(SearchArg::String(h.name()));
    out->push_back(SearchArg::String(h.value()));
  }
  if (!c.message_id().empty()) {
    absl::string_view id = c.message_id();
    absl::ConsumePrefix(&id, "<");
    absl::ConsumeSuffix(&id, ">");
    out->push_back(SearchArg::Atom("HEADER"));
    out->push_back(SearchArg::String("Message-ID"));
    out->push_back(SearchArg::String(absl::StrCat("<", id, ">")));
  }
  absl::Duration widen = top ? absl::Hours(24) : absl::ZeroDuration();
  if (IsSet(c.since())) {
    out->push_back(SearchArg::Atom("SINCE"));
    out->push_back(SearchArg::Atom(ImapDate(FromProto(c.since()) - widen)));
  }
  if (IsSet(c.before())) {
    // BEFORE d: strictly before day d. The instant's own day must be included.
    out->push_back(SearchArg::Atom("BEFORE"));
    out->push_back(SearchArg::Atom(ImapDate(FromProto(c.before()) + absl::Hours(24) + widen)));
  }
  if (IsSet(c.sent_since())) {
    out->push_back(SearchArg::Atom("SENTSINCE"));
    out->push_back(SearchArg::Atom(ImapDate(FromProto(c.sent_since()) - widen)));
  }
  if (IsSet(c.sent_before())) {
    out->push_back(SearchArg::Atom("SENTBEFORE"));
    out->push_back(SearchArg::Atom(ImapDate(FromProto(c.sent_before()) + absl::Hours(24) + widen)));
  }
  if (c.larger() > 0) {
    out->push_back(SearchArg::Atom("LARGER"));
    out->push_back(SearchArg::Atom(Number(c.larger())));
  }
  if (c.smaller() > 0 && c.smaller() <= 0xffffffffu) {
    out->push_back(SearchArg::Atom("SMALLER"));
    out->push_back(SearchArg::Atom(Number(c.smaller())));
  }
  if (c.has_flags_set()) AddFlags(out, c.flags_set(), true);
  if (c.has_flags_unset()) AddFlags(out, c.flags_unset(), false);
  if (c.unread()) out->push_back(SearchArg::Atom("UNSEEN"));
  for (const v1::SearchCriteria& sub : c.all_of()) {
    out->push_back(SearchArg::Open());
    Translate(sub, /*top=*/false, out);
    out->push_back(SearchArg::Close());
  }
  // OR a (OR b c): IMAP's OR takes two keys.
  int n = c.any_of_size();
  for (int i = 0; i < n; ++i) {
    if (i + 1 < n) out->push_back(SearchArg::Atom("OR"));
    out->push_back(SearchArg::Open());
    Translate(c.any_of(i), /*top=*/false, out);
    out->push_back(SearchArg::Close());
  }
  for (const v1::SearchCriteria& sub : c.none_of()) {
    out->push_back(SearchArg::Atom("NOT"));
    out->push_back(SearchArg::Open());
    Translate(sub, /*top=*/false, out);
    out->push_back(SearchArg::Close());
  }
  // An empty group ("()") is not valid IMAP: it means every message.
  if (out->size() == start) out->push_back(SearchArg::Atom("ALL"));
}

absl::Status CheckKeywords(const v1::SearchCriteria& c) {
  for (const v1::Flags* f : {&c.flags_set(), &c.flags_unset()}) {
    v1::Flags keywords_only;
    *keywords_only.mutable_keywords() = f->keywords();
    MP_RETURN_IF_ERROR(ValidateFlags("criteria.flags", keywords_only));
  }
  for (const auto* list : {&c.all_of(), &c.any_of(), &c.none_of()}) {
    for (const v1::SearchCriteria& sub : *list) MP_RETURN_IF_ERROR(CheckKeywords(sub));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ImapDate(absl::Time t) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  absl::CivilDay day = absl::ToCivilDay(t, absl::UTCTimeZone());
  int64_t year = day.year();
  if (year < 1) year = 1;
  if (year > 9999) year = 9999;
  return absl::StrCat(day.day(), "-", kMonths[day.month() - 1], "-", year);
}

bool DateRefinement::Accepts(absl::optional<absl::Time> internal,
                             absl::optional<absl::Time> sent) const {
  if (since || before) {
    if (!internal) return false;
    if (since && *internal < *since) return false;
    if (before && *internal >= *before) return false;
  }
  if (sent_since || sent_before) {
    if (!sent) return false;
    if (sent_since && *sent < *sent_since) return false;
    if (sent_before && *sent >= *sent_before) return false;
  }
  return true;
}

absl::StatusOr<ImapSearch> TranslateCriteria(const v1::SearchCriteria& criteria) {
  MP_RETURN_IF_ERROR(ValidateCriteria(criteria, /*pop3=*/false));
  MP_RETURN_IF_ERROR(CheckKeywords(criteria));
  ImapSearch out;
  Translate(criteria, /*top=*/true, &out.args);
  if (IsSet(criteria.since())) out.refine.since = FromProto(criteria.since());
  if (IsSet(criteria.before())) out.refine.before = FromProto(criteria.before());
  if (IsSet(criteria.sent_since())) out.refine.sent_since = FromProto(criteria.sent_since());
  if (IsSet(criteria.sent_before())) out.refine.sent_before = FromProto(criteria.sent_before());
  return out;
}

}  // namespace mailpool::mailbox
