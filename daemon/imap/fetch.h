// Parsers for the structured FETCH data items (RFC 3501 section 7.4.2): ENVELOPE,
// BODYSTRUCTURE and date-time. They read from a Cursor over one complete response and
// return false on malformed data (the caller treats the response as a protocol
// violation); nesting is bounded by the Cursor's Limits::max_depth.
//
//   Cursor c(response, limits);  ... positioned after "BODYSTRUCTURE "
//   auto body = std::make_unique<BodyPart>();
//   if (!ParseBodyStructure(c, body.get())) /* violation */;
//   body->children[1].part;   // "2"
//
// Thread-compatible.
#ifndef MAILPOOL_IMAP_FETCH_H_
#define MAILPOOL_IMAP_FETCH_H_

#include "imap/client.h"
#include "imap/response.h"

namespace mailpool::imap {

// envelope = "(" env-date SP env-subject SP env-from SP env-sender SP env-reply-to SP
//            env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"
bool ParseEnvelope(Cursor& c, Envelope* out);

// body = "(" (body-type-1part / body-type-mpart) ")", extension data tolerated and kept
// where the struct has a field for it. Fills BodyPart::part for the whole tree.
bool ParseBodyStructure(Cursor& c, BodyPart* out);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_FETCH_H_
