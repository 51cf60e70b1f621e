#include "imap/fetch.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mailpool::imap {
namespace {

// Liberal reading: `parse` reads one value; when it cannot, the value is skipped whole
// (its contents are then unknown to the caller, who keeps whatever defaults it had).
template <typename Parse>
bool OrSkip(Cursor& c, Parse parse) {
  Cursor::Mark mark = c.Save();
  if (parse()) return true;
  c.Restore(mark);
  return c.SkipValue();
}

// A string where the grammar wants one; NIL (seen for type and encoding fields) and
// anything else unreadable count as empty.
bool LiberalString(Cursor& c, std::string* out) {
  Cursor::Mark mark = c.Save();
  if (c.NString(out)) return true;
  c.Restore(mark);
  out->clear();
  return c.SkipValue();
}

// body-fld-octets / body-fld-lines = number; NIL (seen in the wild) is 0.
bool LiberalNumber64(Cursor& c, uint64_t* out) {
  if (c.Word("NIL")) {
    *out = 0;
    return true;
  }
  return c.Number64(out);
}

// address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"
// env-from etc. = "(" 1*address ")" / nil
bool ParseAddresses(Cursor& c, std::vector<Address>* out) {
  if (c.Word("NIL")) return true;
  if (!c.Open()) return false;
  while (!c.Close()) {
    if (!c.CountItem()) return false;
    Address a;
    if (!c.Open() || !c.NString(&a.name) || !c.Space() || !c.NString(&a.adl) || !c.Space() ||
        !c.NString(&a.mailbox) || !c.Space() || !c.NString(&a.host) || !c.Close()) {
      return false;
    }
    out->push_back(std::move(a));
    c.Space();  // Some servers separate addresses with a space; RFC 3501 does not.
  }
  return true;
}

// body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
bool ParseParams(Cursor& c, std::vector<std::pair<std::string, std::string>>* out) {
  if (c.Word("NIL")) return true;
  if (!c.Open()) return false;
  if (c.Close()) return true;  // "()" is not in the grammar but seen in the wild
  for (;;) {
    if (!c.CountItem()) return false;
    std::string name, value;
    if (!LiberalString(c, &name)) return false;
    // A name without a value just before ")" (seen in the wild) has an empty value.
    if (c.Close()) {
      out->emplace_back(absl::AsciiStrToLower(name), std::string());
      return true;
    }
    if (!c.Space() || !LiberalString(c, &value)) return false;
    out->emplace_back(absl::AsciiStrToLower(name), std::move(value));
    if (c.Close()) return true;
    if (!c.Space()) return false;
  }
}

// body-fld-dsp = "(" string SP body-fld-param ")" / nil
bool ParseDisposition(Cursor& c, BodyPart* out) {
  if (c.Word("NIL")) return true;
  if (!c.Open() || !c.NString(&out->disposition) || !c.Space() ||
      !ParseParams(c, &out->disposition_params) || !c.Close()) {
    return false;
  }
  absl::AsciiStrToLower(&out->disposition);
  return true;
}

// body-fld-lang = nstring / "(" string *(SP string) ")"
bool ParseLanguage(Cursor& c, std::vector<std::string>* out) {
  if (c.Peek() != '(') {
    std::string lang;
    bool nil = false;
    if (!c.NString(&lang, &nil)) return false;
    if (!nil) out->push_back(std::move(lang));
    return true;
  }
  if (!c.Open()) return false;
  for (;;) {
    if (!c.CountItem()) return false;
    std::string lang;
    if (!c.NString(&lang)) return false;
    out->push_back(std::move(lang));
    if (c.Close()) return true;
    if (!c.Space()) return false;
  }
}

// The optional tail shared by both extension forms:
// [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]] ")"
bool ParseExtensionTail(Cursor& c, BodyPart* out) {
  if (c.Close()) return true;
  if (!c.Space() || !ParseDisposition(c, out)) return false;
  if (c.Close()) return true;
  if (!c.Space() || !ParseLanguage(c, &out->language)) return false;
  if (c.Close()) return true;
  if (!c.Space() || !c.NString(&out->location)) return false;
  while (!c.Close()) {
    if (!c.Space() || !c.SkipValue()) return false;
  }
  return true;
}

bool ParseBody(Cursor& c, BodyPart* out);

// body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]; after the "(".
bool ParseMultipart(Cursor& c, BodyPart* out) {
  out->type = "multipart";
  while (c.Peek() == '(') {
    if (!c.CountItem()) return false;
    out->children.emplace_back();
    if (!ParseBody(c, &out->children.back())) return false;
    c.Space();  // RFC 3501 has no space between the parts; some servers send one
  }
  if (out->children.empty() || !LiberalString(c, &out->subtype)) return false;
  absl::AsciiStrToLower(&out->subtype);
  if (c.Close()) return true;
  // body-ext-mpart = body-fld-param [SP body-fld-dsp ...]; extension data the reader
  // does not understand is skipped to the part's end.
  Cursor::Mark mark = c.Save();
  if (c.Space() && ParseParams(c, &out->params) && ParseExtensionTail(c, out)) return true;
  c.Restore(mark);
  out->params.clear();
  out->disposition.clear();
  out->disposition_params.clear();
  out->language.clear();
  out->location.clear();
  return c.SkipToClose();
}

// What follows body-fields in body-type-msg / body-type-text / body-type-basic, and the
// body-ext-1part extension data, after which the part's ")" is consumed.
bool ParseSinglePartTail(Cursor& c, BodyPart* out) {
  if (out->type == "message" && (out->subtype == "rfc822" || out->subtype == "global")) {
    // body-type-msg = ... SP envelope SP body SP body-fld-lines
    if (c.Space() && c.Peek() == '(') {
      out->envelope = std::make_unique<Envelope>();
      out->children.emplace_back();
      if (!ParseEnvelope(c, out->envelope.get()) || !c.Space() ||
          !ParseBody(c, &out->children.back()) || !c.Space() || !c.Number(&out->lines)) {
        return false;
      }
    } else if (c.Close()) {
      return true;
    } else {
      return false;
    }
  } else if (out->type == "text") {
    // body-type-text = media-text SP body-fields SP body-fld-lines
    if (c.Close()) return true;  // lines missing: tolerated
    if (!c.Space() || !c.Number(&out->lines)) return false;
  }
  if (c.Close()) return true;
  // body-ext-1part = body-fld-md5 [SP body-fld-dsp ...]
  if (!c.Space() || !c.NString(&out->md5)) return false;
  return ParseExtensionTail(c, out);
}

// body-type-1part after the "(".
bool ParseSinglePart(Cursor& c, BodyPart* out) {
  // body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP
  //               body-fld-octets
  // Read liberally: NIL or an unreadable value where a string belongs is empty, an
  // unreadable parameter list is skipped.
  if (!LiberalString(c, &out->type) || !c.Space() || !LiberalString(c, &out->subtype) ||
      !c.Space() || !OrSkip(c, [&] { return ParseParams(c, &out->params); }) || !c.Space() ||
      !LiberalString(c, &out->id) || !c.Space() || !LiberalString(c, &out->description) ||
      !c.Space() || !LiberalString(c, &out->encoding) || !c.Space() ||
      !LiberalNumber64(c, &out->size)) {
    return false;
  }
  absl::AsciiStrToLower(&out->type);
  absl::AsciiStrToLower(&out->subtype);
  absl::AsciiStrToLower(&out->encoding);
  Cursor::Mark mark = c.Save();
  if (ParseSinglePartTail(c, out)) return true;
  // Fields this reader does not expect here — a message/delivery-status part given the
  // envelope, body and lines of message/rfc822 (real servers do this), extension data
  // out of its place — are skipped to the part's end; the part keeps its body-fields.
  c.Restore(mark);
  out->children.clear();
  out->envelope.reset();
  out->lines = 0;
  out->md5.clear();
  out->disposition.clear();
  out->disposition_params.clear();
  out->language.clear();
  out->location.clear();
  return c.SkipToClose();
}

bool ParseBody(Cursor& c, BodyPart* out) {
  if (!c.Open()) return false;
  if (c.Peek() == '(') return ParseMultipart(c, out);
  return ParseSinglePart(c, out);
}

// RFC 3501 section 6.4.5: a multipart's parts are numbered from 1 under its own number
// (none at the top level); a message/rfc822 part's body is "n.1" unless it is itself a
// multipart, whose parts are then "n.1", "n.2", ...; a non-multipart message's only part
// is "1".
void NumberParts(BodyPart* body, const std::string& prefix) {
  if (body->type == "multipart") {
    body->part = prefix;
    for (size_t i = 0; i < body->children.size(); ++i) {
      std::string child = prefix.empty() ? absl::StrCat(i + 1) : absl::StrCat(prefix, ".", i + 1);
      NumberParts(&body->children[i], child);
    }
    return;
  }
  body->part = prefix.empty() ? "1" : prefix;
  for (BodyPart& child : body->children) {  // message/rfc822: the encapsulated body
    if (child.type == "multipart") {
      NumberParts(&child, body->part);
    } else {
      NumberParts(&child, absl::StrCat(body->part, ".1"));
    }
  }
}

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool Digits(absl::string_view s, int* out) {
  if (s.empty()) return false;
  int n = 0;
  for (char ch : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(ch))) return false;
    n = n * 10 + (ch - '0');
  }
  *out = n;
  return true;
}

}  // namespace

bool ParseEnvelope(Cursor& c, Envelope* out) {
  // Read liberally: a field that cannot be read is skipped (left empty), a missing tail
  // (fewer than ten fields) is empty, extra fields are ignored.
  if (!c.Open()) return false;
  auto addresses = [&c](std::vector<Address>* list) {
    Cursor::Mark mark = c.Save();
    if (ParseAddresses(c, list)) return true;
    c.Restore(mark);
    list->clear();
    return c.SkipValue();
  };
  std::string* strings_before[] = {&out->date, &out->subject};
  std::vector<Address>* lists[] = {&out->from, &out->sender, &out->reply_to,
                                   &out->to,   &out->cc,     &out->bcc};
  std::string* strings_after[] = {&out->in_reply_to, &out->message_id};
  bool first = true;
  auto next = [&]() {
    // Before each field: ")" ends the envelope early; otherwise a space (none first).
    if (first) {
      first = false;
      return true;
    }
    return c.Space();
  };
  for (std::string* field : strings_before) {
    if (c.Close()) return true;
    if (!next() || !LiberalString(c, field)) return false;
  }
  for (std::vector<Address>* list : lists) {
    if (c.Close()) return true;
    if (!next() || !addresses(list)) return false;
  }
  for (std::string* field : strings_after) {
    if (c.Close()) return true;
    if (!next() || !LiberalString(c, field)) return false;
  }
  return c.SkipToClose();
}

bool ParseBodyStructure(Cursor& c, BodyPart* out) {
  if (!ParseBody(c, out)) return false;
  NumberParts(out, "");
  return true;
}

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
// date-day-fixed = (SP DIGIT) / 2DIGIT; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT;
// zone = ("+" / "-") 4DIGIT. `text` is without the quotes.
absl::optional<absl::Time> ParseDateTime(absl::string_view text) {
  if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  // "d-Mon-yyyy hh:mm:ss +zzzz" or "dd-Mon-yyyy hh:mm:ss +zzzz"
  size_t dash = text.find('-');
  if (dash == absl::string_view::npos || dash == 0 || dash > 2) return absl::nullopt;
  if (text.size() != dash + 24) return absl::nullopt;
  int day = 0, year = 0, hour = 0, minute = 0, second = 0, zh = 0, zm = 0;
  absl::string_view month = text.substr(dash + 1, 3);
  int mon = 0;
  for (int i = 0; i < 12; ++i) {
    if (absl::EqualsIgnoreCase(month, kMonths[i])) mon = i + 1;
  }
  absl::string_view rest = text.substr(dash + 4);  // "-yyyy hh:mm:ss +zzzz"
  if (mon == 0 || !Digits(text.substr(0, dash), &day) || rest[0] != '-' ||
      !Digits(rest.substr(1, 4), &year) || rest[5] != ' ' || !Digits(rest.substr(6, 2), &hour) ||
      rest[8] != ':' || !Digits(rest.substr(9, 2), &minute) || rest[11] != ':' ||
      !Digits(rest.substr(12, 2), &second) || rest[14] != ' ' ||
      (rest[15] != '+' && rest[15] != '-') || !Digits(rest.substr(16, 2), &zh) ||
      !Digits(rest.substr(18, 2), &zm)) {
    return absl::nullopt;
  }
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || zm > 59) {
    return absl::nullopt;
  }
  int offset = (zh * 60 + zm) * 60 * (rest[15] == '-' ? -1 : 1);
  absl::CivilSecond civil(year, mon, day, hour, minute, second);
  if (civil.day() != day) return absl::nullopt;  // 31-Feb and friends
  return absl::FromCivil(civil, absl::UTCTimeZone()) - absl::Seconds(offset);
}

std::string FormatDateTime(absl::Time time) {
  absl::CivilSecond c = absl::ToCivilSecond(time, absl::UTCTimeZone());
  return absl::StrFormat("%02d-%s-%04d %02d:%02d:%02d +0000", c.day(), kMonths[c.month() - 1],
                         c.year(), c.hour(), c.minute(), c.second());
}

}  // namespace mailpool::imap
