// Minimal structured logging to stderr: one line per event, key=value pairs.
//
//   Log(LogLevel::kInfo, "session started", {{"session", id}, {"protocol", "IMAP"}});
//
// Never pass a Secret's bytes here (Secret has no conversion to text on purpose).
// Thread-safe.
#ifndef MAILPOOL_COMMON_LOG_H_
#define MAILPOOL_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace mailpool {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
// Whether Log(level, ...) would write; lets callers skip building costly fields.
bool LogEnabled(LogLevel level);
bool ParseLogLevel(absl::string_view text, LogLevel* level);
void Log(LogLevel level, absl::string_view event,
         std::initializer_list<std::pair<absl::string_view, absl::string_view>> fields = {});

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_LOG_H_
