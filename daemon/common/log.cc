#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace mailpool {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

void AppendValue(std::string* out, absl::string_view value) {
  std::string clean = SanitizeServerText(value, 1024);
  bool quote = clean.empty() || clean.find_first_of(" \"=") != std::string::npos;
  if (!quote) return absl::StrAppend(out, clean);
  out->push_back('"');
  for (char c : clean) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

void SetLogLevel(LogLevel level) { min_level = static_cast<int>(level); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= min_level; }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void Log(LogLevel level, absl::string_view event,
         std::initializer_list<std::pair<absl::string_view, absl::string_view>> fields) {
  if (!LogEnabled(level)) return;
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      " level=", LevelName(level), " event=");
  AppendValue(&line, event);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, " ", key, "=");
    AppendValue(&line, value);
  }
  line.push_back('\n');
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace mailpool
