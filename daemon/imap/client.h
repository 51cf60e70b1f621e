// IMAP4rev1 client (RFC 3501), sans I/O: login (greeting, CAPABILITY, STARTTLS, LOGIN and
// AUTHENTICATE with the mechanisms of wire/sasl_exchange.h, SASL-IR where offered), ENABLE
// UTF8=ACCEPT when offered, SELECT of the initial folder, then the mailbox commands below, NOOP,
// IDLE and LOGOUT.
//
//   imap::Options options;
//   options.login.user = "alice";  options.login.password = Secret("...");
//   std::unique_ptr<imap::Client> client = imap::NewClient(std::move(options));
//   ... drive it as in wire/protocol.h until phase() == kReady, then e.g.:
//   imap::FetchRequest request;
//   request.items = imap::kFetchFlags | imap::kFetchBodyStructure;
//   client->StartUidFetch(uids, std::move(request), [&](imap::FetchedMessage m) { ... });
//   ... push server bytes with OnBytes(); back in kReady, error() tells how it went.
//
// Login flow: greeting ("* OK", "* PREAUTH" or a "* BYE" refusal), CAPABILITY unless the
// greeting carried [CAPABILITY ...], STARTTLS when security is kStartTls (capabilities are
// then asked again, RFC 3501 section 6.2.1), authentication (LOGIN unless LOGINDISABLED;
// SASL initial responses on the command line only with SASL-IR), CAPABILITY again unless
// the tagged OK carried them, ENABLE UTF8=ACCEPT (RFC 6855) when offered, SELECT, then
// kReady. Tags are a1, a2, ...
//
// PREAUTH (already authenticated) is accepted over implicit TLS and over plaintext when
// the caller chose kPlain (no credential is sent). With kStartTls it is refused before TLS
// (kFailedPrecondition STARTTLS_NOT_OFFERED): STARTTLS is impossible once authenticated,
// and accepting would silently downgrade the session to plaintext.
//
// Commands. Every Start*() requires kReady; otherwise it does nothing but set error() to
// kFailedPrecondition (in kFailed / kClosed not even that: error() keeps saying why) and
// calls no callback. Caller fields are checked before anything
// is written: CR, LF, NUL or anything else that cannot be sent (an invalid flag, a folder
// name that is not UTF-8, an empty UID set) is kInvalidArgument INVALID_FIELD and the
// client stays kReady. Otherwise the client is kBusy until the tagged reply; result
// callbacks run zero or more times from inside OnBytes() and never after the client is
// back in kReady; then error() says how the command went:
//  - OK: OK.
//  - NO: the status code and reason of imap/refusal.h (by response code, else by command
//    and text: CREATE of an existing folder kAlreadyExists FOLDER_EXISTS, COPY to a
//    missing one kNotFound FOLDER_NOT_FOUND, APPEND too big kResourceExhausted
//    MESSAGE_TOO_BIG, ...); never kUnavailable unless the server says [UNAVAILABLE] or
//    [INUSE].
//  - BAD (the server rejected the syntax, e.g. a search date the client passed through):
//    kInvalidArgument COMMAND_REJECTED.
//  - a command the server does not offer (MOVE without MOVE, UID EXPUNGE without UIDPLUS):
//    kUnimplemented NOT_OFFERED, nothing written.
//  All of these carry the server's reply (MailServerError) and leave the client kReady.
//  - a complete response whose grammar the client cannot read (its framing intact):
//    kInternal MALFORMED_RESPONSE naming the response; the client stays kReady (the
//    stream is still in step). ENVELOPE and BODYSTRUCTURE are read liberally (extension
//    data on any part type, NIL for strings, unknown FETCH items skipped); one that
//    still cannot be read leaves that message without it (FetchedMessage::unparsed),
//    not the command without a result.
//  - broken framing or data past Limits (an oversize literal or line): kFailed,
//    kUnavailable PROTOCOL_VIOLATION (the session reconnects at the next command; the
//    command that met it is not repeated).
//  - an unsolicited "* BYE": kClosed with kUnavailable SERVER_CLOSED (during login:
//    kFailed SERVER_CLOSED); last_reply() holds the BYE line.
// Login errors are those of wire/protocol.h; SELECT of the initial folder refused is
// kFailed with kNotFound FOLDER_NOT_FOUND; NO [UNAVAILABLE] to authentication (RFC 5530)
// is kUnavailable AUTH_UNAVAILABLE.
//
// Folder names are UTF-8 in this API. On the wire they are modified UTF-7 (RFC 3501
// section 5.1.3), or UTF-8 once UTF8=ACCEPT is enabled (utf8_enabled()).
//
// The selected mailbox (mailbox()) is kept current by every response, including the
// unsolicited ones a server interleaves with any command's results (EXISTS, RECENT,
// EXPUNGE, FETCH FLAGS, [UIDVALIDITY] ...); the owner hears of changes through the event
// callback. A FETCH response is a command's result only when it carries a UID in the
// requested set and, unless only FLAGS (and MODSEQ) were asked for, more than UID, FLAGS
// and MODSEQ; any other FETCH is an unsolicited flag update and goes to the event callback
// only.
//
// The client learns sequence number -> UID pairs from every FETCH response carrying a UID
// (a UID FETCH always does; "UID FETCH 1:* (UID)" learns them all) and keeps them current
// across EXPUNGE, so that expunge events carry the UID when known (up to
// Limits::max_tracked_messages messages; beyond that, UIDs in events are 0).
//
// IDLE and Link: StopIdle() is called outside Link::Run's start callback, so the owner
// must flush TakeOutput() to the connection afterwards (DONE is in it).
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_IMAP_CLIENT_H_
#define MAILPOOL_IMAP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "imap/uid_set.h"
#include "wire/protocol.h"

namespace mailpool::imap {

// Bounds on what a (possibly hostile) server may send. Exceeding one is kFailed with
// PROTOCOL_VIOLATION.
struct Limits {
  // One line of response text (between literals). A plain SEARCH answer is one line, so
  // this bounds its size too (~8 bytes per UID).
  size_t max_line = 8 << 20;
  // The text of one response (all its lines, literals excluded).
  size_t max_response_text = 16 << 20;
  // One literal the client buffers (BODY[HEADER] without a sink, envelope fields, ...),
  // and all buffered literals of one response together. Literals streamed to a
  // SectionSink are not buffered and not bounded by this.
  uint64_t max_literal = 64ull << 20;
  // Nesting of parenthesized lists (BODYSTRUCTURE of nested multiparts and messages).
  size_t max_depth = 48;
  // Elements of one list, of one SEARCH answer, of one LIST/LSUB listing, of one
  // COPYUID set.
  size_t max_list_items = 4'000'000;
  // Messages whose UID the client tracks by sequence number (4 bytes each).
  size_t max_tracked_messages = 4'000'000;
};

struct Options {
  wire::LoginOptions login;
  // Folder to SELECT after login, in UTF-8; empty: INBOX.
  std::string initial_folder;
  Limits limits;
  // ENABLE CONDSTORE (RFC 7162) after login when offered, so HIGHESTMODSEQ is kept.
  bool enable_condstore = false;
};

// The selected mailbox (RFC 3501 sections 6.3.1, 7.1, 7.3).
struct MailboxState {
  std::string name;  // UTF-8
  bool read_only = false;
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 0;  // 0 when the server did not say
  uint32_t exists = 0;
  uint32_t recent = 0;
  std::vector<std::string> flags;            // FLAGS
  std::vector<std::string> permanent_flags;  // [PERMANENTFLAGS]; may hold "\*"
  uint64_t highestmodseq = 0;                // [HIGHESTMODSEQ], 0 when absent
};

// Something that changed in the selected mailbox, told by the server on its own.
struct MailboxEvent {
  enum class Kind {
    kExists,    // `exists` is the new message count (new mail, or after expunges)
    kExpunged,  // message `seq` (UID `uid` when known, else 0) was removed
    kFlags,     // message `seq` (UID `uid` when known) now has `flags`
    kVanished,  // UID `uid` was removed (QRESYNC VANISHED; not used yet)
  };
  Kind kind = Kind::kExists;
  uint32_t seq = 0;
  uint32_t uid = 0;
  uint32_t exists = 0;
  std::vector<std::string> flags;
};

// One LIST (or LSUB) entry.
struct ListEntry {
  std::string name;    // UTF-8
  char delimiter = 0;  // hierarchy delimiter; 0 for NIL (flat)
  // Name attributes as sent ("\HasNoChildren", "\Noselect", "\Sent", ...).
  std::vector<std::string> attributes;
  bool subscribed = false;  // "\Subscribed" (LIST-EXTENDED) or listed by LSUB
  // The RFC 6154 special-use attribute ("\Sent", "\Drafts", "\Trash", "\Junk",
  // "\Archive", "\All", "\Flagged"), empty when none.
  std::string special_use;
};

// STATUS answer (RFC 3501 section 6.3.10); absent items were not returned.
struct MailboxStatus {
  absl::optional<uint32_t> messages;
  absl::optional<uint32_t> unseen;
  absl::optional<uint32_t> recent;
  absl::optional<uint32_t> uidnext;
  absl::optional<uint32_t> uidvalidity;
  absl::optional<uint64_t> size;           // STATUS=SIZE (RFC 8438), asked only when offered
  absl::optional<uint64_t> highestmodseq;  // asked only with CONDSTORE enabled
};

// One argument of a search program (RFC 3501 section 6.4.4), built by the caller. Atoms
// and sets are checked for their character class; strings go out bare when they are
// 1*ASTRING-CHAR, as quoted strings (with \" and \\ escaped) when 7-bit, else as
// literals — a caller string can never leave its argument.
struct SearchArg {
  enum class Kind {
    kAtom,    // search-key keyword or a date ("SUBJECT", "SINCE", "1-Feb-2024"): ATOM-CHARs
    kSet,     // a sequence-set ("1:5,9", "1:*"): digits and ":" "," "*"
    kString,  // astring argument: any bytes except CR, LF, NUL
    kOpen,    // "("
    kClose,   // ")"
  };
  Kind kind = Kind::kAtom;
  std::string text;

  static SearchArg Atom(std::string a) { return {Kind::kAtom, std::move(a)}; }
  static SearchArg Set(std::string s) { return {Kind::kSet, std::move(s)}; }
  static SearchArg String(std::string s) { return {Kind::kString, std::move(s)}; }
  static SearchArg Open() { return {Kind::kOpen, {}}; }
  static SearchArg Close() { return {Kind::kClose, {}}; }
};

struct SearchResult {
  // Matching UIDs, ascending (filled when SearchOptions::want_all).
  std::vector<uint32_t> uids;
  // With ESEARCH these come from the server; otherwise computed from the UIDs. Absent for
  // no match.
  absl::optional<uint32_t> min;
  absl::optional<uint32_t> max;
  uint32_t count = 0;
};

struct SearchOptions {
  // With ESEARCH (RFC 4731) the client asks RETURN (ALL) and/or RETURN (MIN MAX COUNT);
  // without it, a plain SEARCH always returns all UIDs.
  bool want_all = true;
  bool want_min_max_count = false;
};

// RFC 3501 section 7.4.2 envelope. Strings are as sent (RFC 2047 encoded words are not
// decoded); NIL is empty.
struct Address {
  std::string name;
  std::string adl;
  std::string mailbox;  // with an empty host: group start (mailbox = group name) or end
  std::string host;
};
struct Envelope {
  std::string date;
  std::string subject;
  std::vector<Address> from, sender, reply_to, to, cc, bcc;
  std::string in_reply_to;
  std::string message_id;
};

// BODYSTRUCTURE (RFC 3501 section 7.4.2), one node per MIME part.
struct BodyPart {
  std::string type;     // lower case: "multipart", "text", "image", "message", ...
  std::string subtype;  // lower case: "mixed", "plain", "rfc822", ...
  // The IMAP part specifier to fetch this part with BODY[part] ("1", "2.1", ...). A
  // single-part message's only part is "1". A multipart has no number of its own: its
  // `part` is the prefix of its children ("" at the top level, so children are "1",
  // "2"...; "3" for a multipart inside message/rfc822 part 3, children "3.1", ...).
  std::string part;
  std::vector<std::pair<std::string, std::string>> params;  // names lower case
  std::string id;                                           // Content-ID
  std::string description;                                  // Content-Description
  std::string encoding;                                     // Content-Transfer-Encoding, lower case
  uint64_t size = 0;                                        // octets of the (encoded) body
  uint32_t lines = 0;                                       // text/* and message/rfc822 only
  std::string md5;
  std::string disposition;  // lower case: "inline", "attachment"; empty when absent
  std::vector<std::pair<std::string, std::string>> disposition_params;  // names lower case
  std::vector<std::string> language;
  std::string location;
  // multipart: the children; message/rfc822: exactly one child, the encapsulated body.
  std::vector<BodyPart> children;
  std::unique_ptr<Envelope> envelope;  // message/rfc822 only
};

// What to fetch (RFC 3501 section 6.4.5). UID is always fetched.
enum FetchItem : uint32_t {
  kFetchFlags = 1 << 0,
  kFetchSize = 1 << 1,  // RFC822.SIZE
  kFetchInternalDate = 1 << 2,
  kFetchEnvelope = 1 << 3,
  kFetchBodyStructure = 1 << 4,
  kFetchModSeq = 1 << 5,  // MODSEQ (CONDSTORE enabled only)
};

// BODY.PEEK[section]<offset.length>: never sets \Seen.
struct SectionRequest {
  // "" (whole message), "HEADER", "TEXT", "1.2", "1.2.MIME", "2.HEADER",
  // "HEADER.FIELDS (SUBJECT FROM)": part numbers, the section-text keywords and, for
  // HEADER.FIELDS[.NOT], a list of header-field names (ASTRING-CHARs).
  std::string section;
  // A partial fetch: `length` bytes from `offset` (length 0: no partial).
  uint64_t offset = 0;
  uint32_t length = 0;
};

struct SectionData {
  std::string section;  // as requested ("HEADER", "1.2", ...)
  uint64_t origin = 0;  // the <origin> of a partial answer
  bool nil = false;     // the server sent NIL
  std::string data;     // empty when streamed to a SectionSink
};

// One message's data from a FETCH response.
struct FetchedMessage {
  uint32_t seq = 0;
  uint32_t uid = 0;
  uint32_t present = 0;  // FetchItem bits of the items the response carried
  std::vector<std::string> flags;
  uint64_t size = 0;
  std::string internal_date;                 // as sent: "17-Jul-1996 02:44:25 -0700"
  absl::optional<absl::Time> internal_time;  // parsed, when well formed
  std::unique_ptr<Envelope> envelope;
  std::unique_ptr<BodyPart> body_structure;
  uint64_t modseq = 0;
  std::vector<SectionData> sections;
  // Items the server sent that could not be read and are left out ("ENVELOPE",
  // "BODYSTRUCTURE"); their FetchItem bit is not in `present`.
  std::vector<std::string> unparsed;
};

// Receives the bytes of a body section of message `seq` (UID `uid`, or 0 when the server
// sends the UID after the section) in pieces as they arrive; `section` is as requested.
// Called with an empty piece and last=true at the end of each section (also for NIL).
using SectionSink = absl::AnyInvocable<void(uint32_t seq, uint32_t uid, absl::string_view section,
                                            absl::string_view piece, bool last)>;

struct FetchRequest {
  uint32_t items = 0;  // FetchItem bits
  std::vector<SectionRequest> sections;
  // When set, section bytes go here and SectionData::data stays empty; otherwise they are
  // buffered (bounded by Limits::max_literal).
  SectionSink sink;
};

enum class StoreMode { kAdd, kRemove, kReplace };  // +FLAGS / -FLAGS / FLAGS

// COPYUID (RFC 4315 section 3): source UID -> UID in the destination.
struct CopyResult {
  uint32_t uidvalidity = 0;  // of the destination; 0 when the server sent no COPYUID
  std::vector<std::pair<uint32_t, uint32_t>> mapping;
};

// APPENDUID (RFC 4315 section 3).
struct AppendResult {
  uint32_t uidvalidity = 0;  // 0 when the server sent no APPENDUID
  uint32_t uid = 0;
};

struct AppendRequest {
  std::vector<std::string> flags;            // system flags or keywords, see StartUidStore
  absl::optional<absl::Time> internal_date;  // sent as date-time in UTC
  std::string message;                       // RFC 5322 bytes (CRLF line endings)
};

class Client : public wire::ClientProtocol {
 public:
  using EventCallback = absl::AnyInvocable<void(const MailboxEvent&)>;
  using ListDone = absl::AnyInvocable<void(std::vector<ListEntry>)>;
  using StatusDone = absl::AnyInvocable<void(MailboxStatus)>;
  using SearchDone = absl::AnyInvocable<void(SearchResult)>;
  using FetchCallback = absl::AnyInvocable<void(FetchedMessage)>;
  using CopyDone = absl::AnyInvocable<void(CopyResult)>;
  using AppendDone = absl::AnyInvocable<void(AppendResult)>;

  // Capability queries (case-insensitive; "AUTH=PLAIN" style names work too).
  virtual bool HasCapability(absl::string_view name) const = 0;
  // Whether ENABLE UTF8=ACCEPT succeeded (folder names then travel as UTF-8).
  virtual bool utf8_enabled() const = 0;
  // Whether ENABLE CONDSTORE succeeded.
  virtual bool condstore_enabled() const = 0;

  // The selected mailbox; after a failed SELECT, nothing is selected (selected() false).
  virtual bool selected() const = 0;
  virtual const MailboxState& mailbox() const = 0;
  // Set once by the owner; called from inside OnBytes() for every change the server
  // reports on its own (during any command, IDLE or NOOP).
  virtual void SetEventCallback(EventCallback callback) = 0;

  // LIST "" pattern (UTF-8; "*" and "%" are wildcards). With LIST-EXTENDED the client asks
  // RETURN (SUBSCRIBED [SPECIAL-USE]) in one command; otherwise LIST then LSUB (and the
  // special-use attributes only if the server puts them in plain LIST, as Dovecot does
  // with SPECIAL-USE). `done` gets every entry, in server order.
  virtual void StartList(std::string pattern, ListDone done) = 0;
  // SELECT (read_only: EXAMINE). mailbox() holds the new state when back in kReady.
  virtual void StartSelect(std::string folder, bool read_only) = 0;
  virtual void StartCreate(std::string folder) = 0;
  virtual void StartDelete(std::string folder) = 0;
  virtual void StartRename(std::string from, std::string to) = 0;
  // SUBSCRIBE (subscribe true) or UNSUBSCRIBE.
  virtual void StartSubscribe(std::string folder, bool subscribe) = 0;
  // STATUS folder (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY [SIZE] [HIGHESTMODSEQ]).
  virtual void StartStatus(std::string folder, StatusDone done) = 0;

  // UID SEARCH [CHARSET UTF-8] criteria (CHARSET only when a string argument is not
  // 7-bit; omitted once UTF8=ACCEPT is enabled). Strings that need a literal go out as
  // non-synchronizing literals with LITERAL+ (or LITERAL- up to 4096 bytes), otherwise as
  // synchronizing literals (the client waits for "+"). Needs a selected mailbox.
  virtual void StartUidSearch(std::vector<SearchArg> criteria, SearchOptions options,
                              SearchDone done) = 0;
  // UID FETCH uids (items, BODY.PEEK[...]...). `each` runs once per result FETCH response.
  virtual void StartUidFetch(UidSet uids, FetchRequest request, FetchCallback each) = 0;
  // UID STORE uids [+|-]FLAGS[.SILENT] (flags). Flags are system flags (\Seen \Answered
  // \Flagged \Deleted \Draft) or keyword atoms; \Recent and \* are refused. Without
  // `silent`, `each` (may be null) gets each updated message's FLAGS.
  virtual void StartUidStore(UidSet uids, StoreMode mode, std::vector<std::string> flags,
                             bool silent, FetchCallback each) = 0;
  // UID COPY uids folder. `done` gets the COPYUID mapping (UIDPLUS) or an empty result.
  virtual void StartUidCopy(UidSet uids, std::string folder, CopyDone done) = 0;
  // UID MOVE uids folder (RFC 6851): kUnimplemented NOT_OFFERED without MOVE (the owner
  // then copies, stores \Deleted and UID EXPUNGEs). Expunges arrive as events.
  virtual void StartUidMove(UidSet uids, std::string folder, CopyDone done) = 0;
  // UID EXPUNGE uids (RFC 4315): kUnimplemented NOT_OFFERED without UIDPLUS.
  virtual void StartUidExpunge(UidSet uids) = 0;
  // EXPUNGE: removes every \Deleted message of the selected mailbox.
  virtual void StartExpunge() = 0;
  // APPEND folder [(flags)] ["date-time"] literal. The message goes out as a
  // non-synchronizing literal with LITERAL+ (LITERAL- up to 4096 bytes), else after the
  // server's "+". An empty message or one with NUL is INVALID_FIELD.
  virtual void StartAppend(std::string folder, AppendRequest request, AppendDone done) = 0;
  // IDLE (RFC 2177): kBusy until StopIdle() and the server's tagged reply; events arrive
  // through the event callback meanwhile. kUnimplemented NOT_OFFERED without IDLE.
  virtual void StartIdle() = 0;
  // Sends DONE (once the server has accepted IDLE with "+"; if it has not yet, DONE goes
  // out when it does). Does nothing outside IDLE.
  virtual void StopIdle() = 0;
  // Whether the server has accepted IDLE ("+" received) and DONE was not sent yet.
  virtual bool idling() const = 0;
};

std::unique_ptr<Client> NewClient(Options options);

// RFC 3501 date-time ("17-Jul-1996 02:44:25 -0700") -> time; nullopt when malformed.
absl::optional<absl::Time> ParseDateTime(absl::string_view text);
// time -> date-time in UTC ("17-Jul-1996 09:44:25 +0000"), without quotes.
std::string FormatDateTime(absl::Time time);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_CLIENT_H_
