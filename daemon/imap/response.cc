#include "imap/response.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "imap/syntax.h"

namespace mailpool::imap {
namespace {

// Literals in one response: a FETCH of one message or a LIST entry needs a handful; the
// bound keeps the bookkeeping of a hostile response small.
constexpr size_t kMaxLiteralsPerResponse = 100'000;

// Whether a response's first line is one that may announce literals: untagged data other
// than a status response (resp-text never holds a literal).
bool MayHaveLiterals(absl::string_view first_line) {
  if (!absl::StartsWith(first_line, "* ")) return false;
  return !ParseStatus(first_line.substr(2)).has_value();
}

}  // namespace

ResponseReader::ResponseReader(const Limits& limits) : limits_(limits), reader_(limits.max_line) {}

void ResponseReader::Violation(std::string what) {
  if (status_.ok()) status_ = absl::UnavailableError(std::move(what));
}

std::optional<Response> ResponseReader::Next() {
  while (status_.ok()) {
    if (literal_left_ > 0) {
      size_t n = static_cast<size_t>(
          std::min<uint64_t>(literal_left_, static_cast<uint64_t>(reader_.buffered())));
      if (n == 0) return std::nullopt;
      std::string piece = reader_.TakeBytes(n);
      literal_left_ -= n;
      if (streaming_) {
        if (sink_) sink_(piece, false);
      } else {
        partial_.literals.back().data += piece;
      }
      if (literal_left_ == 0 && streaming_) {
        streaming_ = false;
        if (sink_) sink_({}, true);
      }
      continue;
    }
    std::optional<std::string> line = reader_.NextLine();
    if (!line) {
      if (!reader_.status().ok()) Violation(std::string(reader_.status().message()));
      return std::nullopt;
    }
    bool first = !in_response_;
    if (first) {
      partial_ = Response();
      buffered_literal_bytes_ = 0;
    }
    if (partial_.text.size() + line->size() > limits_.max_response_text) {
      Violation(absl::StrCat("the server sent a response longer than ", limits_.max_response_text,
                             " bytes"));
      return std::nullopt;
    }
    partial_.text += *line;
    std::optional<uint64_t> size;
    if (!first || MayHaveLiterals(partial_.text)) size = TrailingLiteralSize(*line);
    if (size) {
      if (partial_.literals.size() >= kMaxLiteralsPerResponse) {
        Violation(absl::StrCat("the server sent more than ", kMaxLiteralsPerResponse,
                               " literals in one response"));
        return std::nullopt;
      }
      in_response_ = true;
      Response::Literal literal;
      literal.offset = partial_.text.size();
      literal.size = *size;
      partial_.literals.push_back(std::move(literal));
      bool streamed = query_ && query_(partial_, *size);
      partial_.literals.back().streamed = streamed;
      if (!streamed) {
        buffered_literal_bytes_ += *size;
        if (buffered_literal_bytes_ > limits_.max_literal) {
          Violation(absl::StrCat("the server announced literals of more than ", limits_.max_literal,
                                 " bytes in one response"));
          return std::nullopt;
        }
        partial_.literals.back().data.reserve(
            static_cast<size_t>(std::min<uint64_t>(*size, 1 << 20)));
      }
      streaming_ = streamed;
      literal_left_ = *size;
      if (*size == 0 && streaming_) {
        streaming_ = false;
        if (sink_) sink_({}, true);
      }
      continue;
    }
    in_response_ = false;
    return std::exchange(partial_, Response());
  }
  return std::nullopt;
}

bool Cursor::Consume(char c) {
  if (Peek() != c || AtEnd()) return false;
  ++pos_;
  return true;
}

bool Cursor::Word(absl::string_view word) {
  if (r_.text.size() - std::min(pos_, r_.text.size()) < word.size()) return false;
  if (!absl::EqualsIgnoreCase(absl::string_view(r_.text).substr(pos_, word.size()), word)) {
    return false;
  }
  size_t end = pos_ + word.size();
  if (end < r_.text.size() && IsAtomChar(r_.text[end])) return false;
  pos_ = end;
  return true;
}

bool Cursor::Atom(absl::string_view* out) {
  size_t start = pos_;
  while (!AtEnd() && IsAtomChar(r_.text[pos_])) ++pos_;
  if (pos_ == start) return false;
  *out = absl::string_view(r_.text).substr(start, pos_ - start);
  return true;
}

bool Cursor::AstringAtom(absl::string_view* out) {
  size_t start = pos_;
  while (!AtEnd() && IsAstringChar(r_.text[pos_])) ++pos_;
  if (pos_ == start) return false;
  *out = absl::string_view(r_.text).substr(start, pos_ - start);
  return true;
}

bool Cursor::Flag(absl::string_view* out) {
  size_t start = pos_;
  if (Consume('\\')) {
    absl::string_view rest;
    if (!Consume('*') && !Atom(&rest)) {
      pos_ = start;
      return false;
    }
    *out = absl::string_view(r_.text).substr(start, pos_ - start);
    return true;
  }
  return Atom(out);
}

bool Cursor::FetchAttName(absl::string_view* out) {
  size_t start = pos_;
  // "[" is an ATOM-CHAR, but here it opens the section.
  while (!AtEnd() && r_.text[pos_] != '[' && IsAtomChar(r_.text[pos_])) ++pos_;
  if (pos_ == start) return false;
  if (Consume('[')) {
    // section = "[" [section-spec] "]"; the spec may hold a parenthesized header list.
    size_t close = r_.text.find(']', pos_);
    if (close == std::string::npos) return false;
    pos_ = close + 1;
    absl::string_view origin;
    if (Peek() == '<') Atom(&origin);  // "<" number ">": "<" and ">" are ATOM-CHARs
  }
  *out = absl::string_view(r_.text).substr(start, pos_ - start);
  return true;
}

bool Cursor::Number64(uint64_t* out) {
  size_t start = pos_;
  uint64_t n = 0;
  while (!AtEnd() && absl::ascii_isdigit(static_cast<unsigned char>(r_.text[pos_]))) {
    if (pos_ - start >= 19) return false;
    n = n * 10 + static_cast<uint64_t>(r_.text[pos_] - '0');
    ++pos_;
  }
  if (pos_ == start) return false;
  *out = n;
  return true;
}

bool Cursor::Number(uint32_t* out) {
  size_t start = pos_;
  uint64_t n = 0;
  if (!Number64(&n) || n > UINT32_MAX) {
    pos_ = start;
    return false;
  }
  *out = static_cast<uint32_t>(n);
  return true;
}

const Response::Literal* Cursor::LiteralAt(size_t* announcement_end) const {
  size_t p = pos_;
  if (p < r_.text.size() && r_.text[p] == '~') ++p;
  if (p >= r_.text.size() || r_.text[p] != '{') return nullptr;
  size_t close = r_.text.find('}', p);
  if (close == std::string::npos) return nullptr;
  // The literal must sit exactly where this announcement ends.
  auto it =
      std::lower_bound(r_.literals.begin(), r_.literals.end(), close + 1,
                       [](const Response::Literal& l, size_t offset) { return l.offset < offset; });
  if (it == r_.literals.end() || it->offset != close + 1) return nullptr;
  *announcement_end = close + 1;
  return &*it;
}

bool Cursor::AtTrailingLiteral() const {
  size_t end = 0;
  return LiteralAt(&end) != nullptr && end == r_.text.size();
}

bool Cursor::String(std::string* out) {
  last_streamed_ = false;
  if (Consume('"')) {
    out->clear();
    while (!AtEnd()) {
      char c = r_.text[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (AtEnd()) return false;
        c = r_.text[pos_++];
        if (c != '\\' && c != '"') return false;  // QUOTED-CHAR allows only these escapes
      }
      out->push_back(c);
    }
    return false;  // unterminated
  }
  size_t end = 0;
  const Response::Literal* literal = LiteralAt(&end);
  if (literal == nullptr) return false;
  pos_ = end;
  last_streamed_ = literal->streamed;
  if (mutable_ != nullptr) {
    *out = std::move(mutable_->literals[literal - r_.literals.data()].data);
  } else {
    *out = literal->data;
  }
  return true;
}

bool Cursor::NString(std::string* out, bool* nil) {
  if (Word("NIL")) {
    out->clear();
    last_streamed_ = false;
    if (nil != nullptr) *nil = true;
    return true;
  }
  if (nil != nullptr) *nil = false;
  return String(out);
}

bool Cursor::AString(std::string* out) {
  absl::string_view atom;
  if (AstringAtom(&atom)) {
    out->assign(atom.data(), atom.size());
    return true;
  }
  return String(out);
}

bool Cursor::Open() {
  if (!Consume('(')) return false;
  return ++depth_ <= limits_.max_depth;
}

bool Cursor::Close() {
  if (depth_ == 0 || !Consume(')')) return false;
  --depth_;
  return true;
}

bool Cursor::SkipValue() {
  if (!CountItem()) return false;
  if (Peek() == '(') {
    if (!Open()) return false;
    if (Close()) return true;
    for (;;) {
      if (!SkipValue()) return false;
      if (Close()) return true;
      if (!Space()) return false;
    }
  }
  if (Peek() == '"' || Peek() == '{' || Peek() == '~') {
    std::string ignored;
    return String(&ignored);
  }
  absl::string_view atom;
  // An atom, number, NIL, flag or att name with a section ("BODY[1]<0>").
  if (Peek() == '\\') return Flag(&atom);
  return FetchAttName(&atom) || AstringAtom(&atom);
}

bool Cursor::SkipToClose() {
  for (;;) {
    if (Close()) return true;
    if (AtEnd()) return false;
    if (Space()) continue;
    if (!SkipValue()) return false;
  }
}

absl::string_view Cursor::Rest() const {
  return AtEnd() ? absl::string_view() : absl::string_view(r_.text).substr(pos_);
}

}  // namespace mailpool::imap
