// UID sets (RFC 3501 section 9 "sequence-set" restricted to UIDs; RFC 4315 "uid-set").
//
//   UidSet set;
//   set.Add(7); set.AddRange(1, 5); set.AddRange(9, 12);
//   set.ToString();                                   // "1:5,7,9:12"
//   absl::StatusOr<UidSet> parsed = UidSet::Parse("3,1:2");   // {1..3}
//   absl::StatusOr<std::vector<uint32_t>> ordered = ExpandUidSet("5,3:4");  // 5, 3, 4
//
// A UidSet is normalized (sorted, merged ranges), so formatting is always compact. Server
// text is hostile: Parse and ExpandUidSet bound the number of ranges and of UIDs.
//
// Thread-compatible.
#ifndef MAILPOOL_IMAP_UID_SET_H_
#define MAILPOOL_IMAP_UID_SET_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mailpool::imap {

class UidSet {
 public:
  // Bounds what Parse accepts (server or caller text).
  static constexpr size_t kMaxRanges = 100'000;

  UidSet() = default;
  // UIDs are nz-number (>= 1); 0 is ignored.
  void Add(uint32_t uid) { AddRange(uid, uid); }
  // Adds first..last inclusive (either order).
  void AddRange(uint32_t first, uint32_t last);

  bool empty() const { return ranges_.empty(); }
  // Number of UIDs in the set.
  uint64_t size() const;
  bool Contains(uint32_t uid) const;
  // Sorted, disjoint, non-adjacent ranges.
  const std::vector<std::pair<uint32_t, uint32_t>>& ranges() const { return ranges_; }

  // "1:5,7,9:12"; empty string for an empty set.
  std::string ToString() const;

  // uid-set = (uniqueid / uid-range) *("," uid-set); uid-range = uniqueid ":" uniqueid.
  // "*" is refused (a UidSet holds concrete UIDs). INVALID_ARGUMENT on malformed text or
  // more than kMaxRanges elements.
  static absl::StatusOr<UidSet> Parse(absl::string_view text);

  friend bool operator==(const UidSet& a, const UidSet& b) { return a.ranges_ == b.ranges_; }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

// The UIDs of a uid-set in the order written (COPYUID pairs its two sets by position,
// RFC 4315 section 3), a range "a:b" expanded from a to b. INVALID_ARGUMENT on malformed
// text or more than `max_uids` UIDs.
absl::StatusOr<std::vector<uint32_t>> ExpandUidSet(absl::string_view text, size_t max_uids);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_UID_SET_H_
