// SearchCriteria (mailbox.proto) translated into an IMAP UID SEARCH program (RFC 3501
// section 6.4.4) that the IMAP client sends as typed arguments: caller text only ever
// travels as a string argument (quoted or literal, chosen by the client), never spliced
// into the command line.
//
//   absl::StatusOr<ImapSearch> search = TranslateCriteria(request.criteria());
//   client.StartUidSearch(search->args, options, ...);
//   // then, for each hit when search->refine.needed(): keep it if
//   //   search->refine.Accepts(internal_time, date_header_time)
//
// IMAP dates have day granularity (and the server's time zone): the instants of the
// top-level since/before/sent_since/sent_before are sent widened by a day on each side and
// the daemon refines the server's answer to the exact instant. Date bounds nested inside
// any_of/none_of are sent at day granularity (in UTC) and not refined.
//
// Thread-safe (pure functions).
#ifndef MAILPOOL_MAILBOX_IMAP_SEARCH_H_
#define MAILPOOL_MAILBOX_IMAP_SEARCH_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "imap/client.h"
#include "mailpool/v1/mailbox.pb.h"

namespace mailpool::mailbox {

// Exact bounds the daemon checks after the server's day-granular answer.
struct DateRefinement {
  absl::optional<absl::Time> since, before;            // INTERNALDATE
  absl::optional<absl::Time> sent_since, sent_before;  // Date header
  bool needed() const { return since || before || sent_since || sent_before; }
  bool needs_sent_date() const { return sent_since || sent_before; }
  // `sent` is nullopt when the message has no (parsable) Date header: it then fails any
  // sent bound, as IMAP SENTSINCE/SENTBEFORE would.
  bool Accepts(absl::optional<absl::Time> internal, absl::optional<absl::Time> sent) const;
};

struct ImapSearch {
  std::vector<imap::SearchArg> args;
  DateRefinement refine;
};

// INVALID_ARGUMENT for criteria that ValidateCriteria refuses, or keywords that are not
// IMAP atoms.
absl::StatusOr<ImapSearch> TranslateCriteria(const v1::SearchCriteria& criteria);

// "1-Feb-2024" (RFC 3501 date, day of `t` in UTC).
std::string ImapDate(absl::Time t);

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_IMAP_SEARCH_H_
