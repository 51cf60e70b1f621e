// IMAP4rev1 response framing and parsing (RFC 3501 section 9), bounded and incremental.
//
// ResponseReader turns pushed server bytes into complete responses: a response is its
// lines (without CRLF) joined together, with the literals ({n} and literal8 ~{n}) it
// announces held beside the text. Literals may arrive split across any number of reads;
// one the owner wants streamed (a big BODY[] section) goes to a sink in pieces and is not
// kept. Cursor then reads the grammar's elements out of a complete response.
//
//   ResponseReader reader(limits);
//   reader.Append(bytes);
//   while (std::optional<Response> r = reader.Next()) {
//     Cursor c(*r, limits);
//     uint32_t n;
//     if (c.Consume('*') && c.Space() && c.Number(&n) && c.Space() && c.Word("EXISTS")) ...
//   }
//   if (!reader.status().ok()) /* protocol violation: drop the connection */;
//
// Untagged status responses ("* OK ...", "* BYE ...") and tagged and continuation lines
// carry resp-text, never literals, so a "{5}" at their end is text. Every bound of Limits
// is enforced: past one, status() fails and stays failed.
//
// Thread-compatible.
#ifndef MAILPOOL_IMAP_RESPONSE_H_
#define MAILPOOL_IMAP_RESPONSE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "imap/client.h"
#include "wire/line_reader.h"

namespace mailpool::imap {

struct Response {
  struct Literal {
    size_t offset = 0;  // position in `text` right after the "{n}" that announced it
    uint64_t size = 0;
    bool streamed = false;  // delivered to the stream sink; `data` is empty
    std::string data;
  };
  std::string text;
  std::vector<Literal> literals;
};

class ResponseReader {
 public:
  // Asked when a literal is announced: `partial` is the response so far (its text ends
  // with the announcement). True: stream the literal's bytes to the piece sink.
  using StreamQuery = absl::AnyInvocable<bool(const Response& partial, uint64_t size)>;
  // Receives a streamed literal in pieces; last=true (with an empty piece) at its end.
  using PieceSink = absl::AnyInvocable<void(absl::string_view piece, bool last)>;

  explicit ResponseReader(const Limits& limits);

  void SetStreaming(StreamQuery query, PieceSink sink) {
    query_ = std::move(query);
    sink_ = std::move(sink);
  }
  void Append(absl::string_view data) { reader_.Append(data); }
  // The next complete response, or nullopt when more bytes are needed (or status() fails).
  // Streamed pieces reach the sink from inside this call.
  std::optional<Response> Next();
  const absl::Status& status() const { return status_; }
  // Bytes received and not consumed yet.
  size_t buffered() const { return reader_.buffered(); }

 private:
  void Violation(std::string what);

  const Limits& limits_;
  wire::LineReader reader_;
  absl::Status status_;
  StreamQuery query_;
  PieceSink sink_;
  Response partial_;
  bool in_response_ = false;
  uint64_t literal_left_ = 0;  // bytes of the current literal not received yet
  bool streaming_ = false;
  uint64_t buffered_literal_bytes_ = 0;
};

// Reads grammar elements from one complete response. Every method returns false (and
// consumes nothing useful) when the element is not there; a false on required syntax
// makes the response malformed. Depth and element counts are bounded by Limits.
class Cursor {
 public:
  Cursor(const Response& response, const Limits& limits) : r_(response), limits_(limits) {}
  // A cursor that moves literal data out of `response` as it reads it (no copy of a big
  // buffered section); each literal can then be read once.
  Cursor(Response* response, const Limits& limits)
      : r_(*response), mutable_(response), limits_(limits) {}

  bool AtEnd() const { return pos_ >= r_.text.size(); }
  // The next character, or 0 at the end.
  char Peek() const { return AtEnd() ? 0 : r_.text[pos_]; }
  bool Consume(char c);
  bool Space() { return Consume(' '); }
  // A case-insensitive keyword followed by a non-atom character or the end.
  bool Word(absl::string_view word);
  // atom = 1*ATOM-CHAR
  bool Atom(absl::string_view* out);
  // 1*ASTRING-CHAR (ATOM-CHAR and "]")
  bool AstringAtom(absl::string_view* out);
  // A flag ("\Seen", "\*", "$Junk", "keyword"): "\" then atom, or "\*", or an atom.
  bool Flag(absl::string_view* out);
  // A FETCH att name: an atom that may carry "[section]" and "<origin>"
  // ("BODY[HEADER.FIELDS (SUBJECT)]<0>").
  bool FetchAttName(absl::string_view* out);
  bool Number(uint32_t* out);
  bool Number64(uint64_t* out);
  // string = quoted / literal. A streamed literal yields an empty string and sets
  // last_streamed().
  bool String(std::string* out);
  // nstring = string / NIL; *nil says which (may be null).
  bool NString(std::string* out, bool* nil = nullptr);
  // astring = 1*ASTRING-CHAR / string
  bool AString(std::string* out);
  bool last_streamed() const { return last_streamed_; }
  // Whether a literal announcement starts here and its literal is the response's last
  // one, at the very end of the text (the literal being received: see StreamQuery).
  bool AtTrailingLiteral() const;
  // "(" / ")" with depth accounting.
  bool Open();
  bool Close();
  // Any value (atom, number, string, NIL, nested list) — for data the client ignores.
  bool SkipValue();
  // Counts one list element against Limits::max_list_items.
  bool CountItem() { return ++items_ <= limits_.max_list_items; }
  // The unparsed remainder of the text (for resp-text).
  absl::string_view Rest() const;
  size_t depth() const { return depth_; }
  // A position to come back to when a liberal reader gives up on one reading of a value
  // and tries another (literal data already moved out by a mutable cursor stays moved).
  struct Mark {
    size_t pos = 0;
    size_t depth = 0;
  };
  Mark Save() const { return {pos_, depth_}; }
  void Restore(Mark mark) {
    pos_ = mark.pos;
    depth_ = mark.depth;
  }
  // Skips values up to and including the ")" that closes the list at the current depth
  // (for extension data a reader does not understand).
  bool SkipToClose();

 private:
  // Whether a literal starts at pos_ ("{n}" or "~{n}" ending where a literal sits).
  const Response::Literal* LiteralAt(size_t* announcement_end) const;

  const Response& r_;
  Response* mutable_ = nullptr;
  const Limits& limits_;
  size_t pos_ = 0;
  size_t depth_ = 0;
  size_t items_ = 0;
  bool last_streamed_ = false;
};

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_RESPONSE_H_
