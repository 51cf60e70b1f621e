#include "imap/uid_set.h"

#include <algorithm>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "imap/syntax.h"

namespace mailpool::imap {
namespace {

// nz-number: 1..2^32-1, no leading zero (RFC 3501 section 9); "0" is refused.
std::optional<uint32_t> ParseUid(absl::string_view text) {
  if (text.empty() || text.front() == '0') return std::nullopt;
  return ParseNumber(text);
}

// Calls add(first, last) for each element of a uid-set in the order written, until it
// returns false.
template <typename Add>
absl::Status ForEachRange(absl::string_view text, size_t max_elements, Add add) {
  if (text.empty()) return absl::InvalidArgumentError("empty UID set");
  size_t elements = 0;
  for (absl::string_view element : absl::StrSplit(text, ',')) {
    if (++elements > max_elements) {
      return absl::InvalidArgumentError(
          absl::StrCat("UID set with more than ", max_elements, " elements"));
    }
    size_t colon = element.find(':');
    std::optional<uint32_t> first = ParseUid(element.substr(0, colon));
    std::optional<uint32_t> last =
        colon == absl::string_view::npos ? first : ParseUid(element.substr(colon + 1));
    if (!first || !last) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed UID set element \"", element.substr(0, 32), "\""));
    }
    if (!add(*first, *last)) break;
  }
  return absl::OkStatus();
}

}  // namespace

void UidSet::AddRange(uint32_t first, uint32_t last) {
  if (first > last) std::swap(first, last);
  if (first == 0) first = 1;
  if (last == 0) return;
  // Find the first range that could touch [first, last] (its end + 1 >= first).
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), first,
                             [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) {
                               return static_cast<uint64_t>(r.second) + 1 < v;
                             });
  auto end = it;
  while (end != ranges_.end() &&
         static_cast<uint64_t>(end->first) <= static_cast<uint64_t>(last) + 1) {
    first = std::min(first, end->first);
    last = std::max(last, end->second);
    ++end;
  }
  it = ranges_.erase(it, end);
  ranges_.insert(it, {first, last});
}

uint64_t UidSet::size() const {
  uint64_t n = 0;
  for (const auto& [first, last] : ranges_) n += static_cast<uint64_t>(last) - first + 1;
  return n;
}

bool UidSet::Contains(uint32_t uid) const {
  auto it = std::lower_bound(
      ranges_.begin(), ranges_.end(), uid,
      [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
  return it != ranges_.end() && it->first <= uid;
}

std::string UidSet::ToString() const {
  std::string out;
  for (const auto& [first, last] : ranges_) {
    if (!out.empty()) out += ',';
    if (first == last) {
      absl::StrAppend(&out, first);
    } else {
      absl::StrAppend(&out, first, ":", last);
    }
  }
  return out;
}

absl::StatusOr<UidSet> UidSet::Parse(absl::string_view text) {
  UidSet set;
  absl::Status status = ForEachRange(text, kMaxRanges, [&](uint32_t first, uint32_t last) {
    set.AddRange(first, last);
    return true;
  });
  if (!status.ok()) return status;
  return set;
}

absl::StatusOr<std::vector<uint32_t>> ExpandUidSet(absl::string_view text, size_t max_uids) {
  std::vector<uint32_t> uids;
  bool too_many = false;
  absl::Status status = ForEachRange(text, max_uids, [&](uint32_t first, uint32_t last) {
    uint64_t count = (first <= last ? last - first : first - last) + uint64_t{1};
    if (too_many || uids.size() + count > max_uids) {
      too_many = true;
      return false;
    }
    if (first <= last) {
      for (uint64_t u = first; u <= last; ++u) uids.push_back(static_cast<uint32_t>(u));
    } else {
      for (uint64_t u = first; u >= last; --u) uids.push_back(static_cast<uint32_t>(u));
    }
    return true;
  });
  if (!status.ok()) return status;
  if (too_many) {
    return absl::InvalidArgumentError(absl::StrCat("UID set with more than ", max_uids, " UIDs"));
  }
  return uids;
}

}  // namespace mailpool::imap
