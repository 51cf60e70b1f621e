// CLI commands that move many messages between the mailbox and local files, with a
// progress bar: export (a folder to an mbox file or a Maildir) and append (files, a Maildir
// or an mbox file into a folder).
//
//   mailpool export alice --folder Archive --mbox archive.mbox
//   mailpool append alice Archive --maildir ~/Maildir/.Archive
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli.h"
#include "mailpool/v1/mailbox.grpc.pb.h"

namespace mailpool::cli {
namespace {

// CRLF to LF: mbox files and Maildirs hold messages with local line endings.
std::string ToLf(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out += s[i];
  }
  return out;
}

// mboxrd: a line that is "From " after any number of '>' gets one more '>'.
bool IsFromLine(absl::string_view line) {
  while (absl::StartsWith(line, ">")) line.remove_prefix(1);
  return absl::StartsWith(line, "From ");
}

std::string MboxEscape(const std::string& message) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    if (IsFromLine(line)) out += '>';
    out.append(line.data(), line.size());
    out += '\n';
  }
  out.pop_back();  // StrSplit gave one more piece than there were newlines
  return out;
}

// The "From " separator line: the envelope sender (Return-Path) when the header has one.
std::string MboxFromLine(const std::string& message, const google::protobuf::Timestamp& when) {
  std::string sender = "MAILER-DAEMON";
  size_t end_of_header = message.find("\n\n");
  absl::string_view header(message.data(),
                           end_of_header == std::string::npos ? message.size() : end_of_header);
  for (absl::string_view line : absl::StrSplit(header, '\n')) {
    if (absl::StartsWithIgnoreCase(line, "Return-Path:")) {
      std::string v(absl::StripAsciiWhitespace(line.substr(12)));
      v.erase(std::remove_if(v.begin(), v.end(), [](char c) { return c == '<' || c == '>'; }),
              v.end());
      if (!v.empty() && v.find(' ') == std::string::npos) sender = v;
      break;
    }
  }
  absl::Time t = when.seconds() != 0 ? absl::FromUnixSeconds(when.seconds()) : absl::Now();
  return absl::StrCat("From ", sender, " ",
                      absl::FormatTime("%a %b %e %H:%M:%S %Y", t, absl::UTCTimeZone()), "\n");
}

// Maildir info suffix ":2,FLAGS" (letters in ASCII order) and back.
std::string MaildirInfo(const v1::Flags& f) {
  std::string letters;
  if (f.draft()) letters += 'D';
  if (f.flagged()) letters += 'F';
  if (std::find(f.keywords().begin(), f.keywords().end(), "$Forwarded") != f.keywords().end()) {
    letters += 'P';
  }
  if (f.answered()) letters += 'R';
  if (f.seen()) letters += 'S';
  if (f.deleted()) letters += 'T';
  return ":2," + letters;
}

v1::Flags FlagsFromMaildirName(const std::string& name) {
  v1::Flags f;
  size_t info = name.rfind(":2,");
  if (info == std::string::npos) return f;
  for (char c : name.substr(info + 3)) {
    switch (c) {
      case 'D':
        f.set_draft(true);
        break;
      case 'F':
        f.set_flagged(true);
        break;
      case 'P':
        f.add_keywords("$Forwarded");
        break;
      case 'R':
        f.set_answered(true);
        break;
      case 'S':
        f.set_seen(true);
        break;
      case 'T':
        f.set_deleted(true);
        break;
      default:
        break;  // lower-case letters are private to their writers
    }
  }
  return f;
}

bool MakeDir(const std::string& path) { return mkdir(path.c_str(), 0700) == 0 || errno == EEXIST; }

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) throw std::runtime_error(absl::StrCat("cannot write ", path));
}

// export SESSION (--mbox FILE | --maildir DIR) [--folder F] [--unread]
int Export(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  if (args.Has("mbox") == args.Has("maildir")) Usage("export needs --mbox FILE or --maildir DIR");
  bool mbox = args.Has("mbox");
  std::string path = mbox ? args.Get("mbox") : args.Get("maildir");
  std::ofstream mbox_out;
  if (mbox) {
    mbox_out.open(path, std::ios::binary | std::ios::app);
    if (!mbox_out) Usage(absl::StrCat("cannot write ", path));
  } else if (!MakeDir(path) || !MakeDir(path + "/tmp") || !MakeDir(path + "/new") ||
             !MakeDir(path + "/cur")) {
    Usage(absl::StrCat("cannot create the Maildir ", path));
  }
  auto stub = v1::MailboxService::NewStub(env.channel);
  Progress progress(env.progress, "export", 0);
  std::string host = "localhost";
  char hostname[256] = {};
  if (gethostname(hostname, sizeof hostname - 1) == 0) host = hostname;
  uint64_t done = 0, bytes = 0;
  std::string token;
  do {
    // BASIC view: the flags and receive time that mbox and Maildir keep, nothing more.
    v1::ListMessagesRequest list;
    list.set_session(session);
    list.set_folder(args.Get("folder"));
    list.set_view(v1::MESSAGE_VIEW_BASIC);
    list.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
    list.set_filter(args.Has("unread") ? v1::MESSAGE_FILTER_UNREAD : v1::MESSAGE_FILTER_ALL);
    list.set_page_size(1000);
    list.set_page_token(token);
    v1::ListMessagesResponse page;
    grpc::ClientContext list_ctx;
    SetDeadline(&list_ctx, 300);
    grpc::Status status = stub->ListMessages(&list_ctx, list, &page);
    if (!status.ok()) return Fail(env, status, list_ctx);
    progress.SetTotal(std::max<uint64_t>(page.total_count(), done + page.messages_size()));
    token = page.next_page_token();
    for (const auto& m : page.messages()) {
      v1::StreamMessageRequest request;
      request.set_session(session);
      request.set_id(m.id());
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 600);
      auto reader = stub->StreamMessage(&ctx, request);
      std::string source;
      v1::StreamMessageResponse chunk;
      while (reader->Read(&chunk)) {
        if (source.empty()) source.reserve(chunk.total_size());
        source += chunk.data();
        progress.Update(done, bytes + source.size());
      }
      status = reader->Finish();
      if (!status.ok()) return Fail(env, status, ctx);
      bytes += source.size();
      std::string message = ToLf(source);
      if (!message.empty() && message.back() != '\n') message += '\n';
      if (mbox) {
        mbox_out << MboxFromLine(message, m.receive_time()) << MboxEscape(message) << '\n';
        if (!mbox_out) Usage(absl::StrCat("cannot write ", path));
      } else {
        // Written under tmp/, then renamed into cur/: readers never see half a message.
        std::string name =
            absl::StrCat(absl::ToUnixSeconds(absl::Now()), ".", getpid(), "_", done, ".", host);
        std::string tmp = absl::StrCat(path, "/tmp/", name);
        WriteFile(tmp, message);
        if (m.receive_time().seconds() != 0) {
          struct timespec times[2] = {{m.receive_time().seconds(), 0},
                                      {m.receive_time().seconds(), 0}};
          utimensat(AT_FDCWD, tmp.c_str(), times, 0);
        }
        std::string final_path = absl::StrCat(path, "/cur/", name, MaildirInfo(m.flags()));
        if (rename(tmp.c_str(), final_path.c_str()) != 0) {
          throw std::runtime_error(absl::StrCat("cannot rename into ", final_path));
        }
      }
      progress.Update(++done, bytes);
    }
  } while (!token.empty());
  progress.Finish();
  if (env.json) {
    JsonObject out;
    out.Set("format", mbox ? "mbox" : "maildir")
        .Set("path", path)
        .Set("messages", static_cast<double>(done))
        .Set("bytes", static_cast<double>(bytes));
    out.Print();
  } else {
    printf("exported %llu messages (%s) to %s %s\n", static_cast<unsigned long long>(done),
           FormatBytes(bytes).c_str(), mbox ? "mbox" : "Maildir", path.c_str());
  }
  return kExitOk;
}

// One message to append: its bytes, where it came from, flags and time it carries.
struct Item {
  std::string label;
  std::string source;
  v1::Flags flags;
  int64_t mtime = 0;
};

std::vector<std::string> MaildirFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* sub : {"/cur", "/new"}) {
    std::string d = dir + sub;
    DIR* h = opendir(d.c_str());
    if (h == nullptr) Usage(absl::StrCat("not a Maildir (no ", d, ")"));
    while (dirent* e = readdir(h)) {
      if (e->d_name[0] != '.') files.push_back(absl::StrCat(d, "/", e->d_name));
    }
    closedir(h);
  }
  std::sort(files.begin(), files.end());  // names start with the delivery time
  return files;
}

// Splits an mbox (mboxo or mboxrd) file into messages, undoing the ">From " escaping.
std::vector<std::string> SplitMbox(const std::string& data) {
  std::vector<std::string> messages;
  std::string current;
  bool started = false;
  absl::string_view all = data;
  if (absl::EndsWith(all, "\n")) all.remove_suffix(1);  // no empty line after the last \n
  for (absl::string_view line : absl::StrSplit(all, '\n')) {
    if (absl::StartsWith(line, "From ")) {
      if (started) messages.push_back(std::move(current));
      current.clear();
      started = true;
      continue;
    }
    if (!started) continue;
    if (IsFromLine(line) && absl::StartsWith(line, ">")) line.remove_prefix(1);
    current.append(line.data(), line.size());
    current += '\n';
  }
  if (started) messages.push_back(std::move(current));
  for (auto& m : messages) {
    // The blank line before the next "From " belongs to the separator.
    if (absl::EndsWith(m, "\n\n")) m.pop_back();
  }
  return messages;
}

// append SESSION FOLDER (FILE... | --maildir DIR | --mbox FILE) [--flags L]
int Append(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  const std::string& folder = Positional(args, 1, "folder");
  int sources = (args.positional.size() > 2) + args.Has("maildir") + args.Has("mbox");
  if (sources != 1) Usage("append needs message files, --maildir DIR or --mbox FILE (one of)");
  v1::Flags extra;
  if (args.Has("flags")) extra = ParseFlags(args.Get("flags"), "flags");
  // Paths are gathered first (to know the total); files are read one at a time.
  std::vector<std::string> paths;
  std::vector<std::string> mbox_messages;
  if (args.Has("maildir")) {
    paths = MaildirFiles(args.Get("maildir"));
  } else if (args.Has("mbox")) {
    mbox_messages = SplitMbox(ReadFile(args.Get("mbox")));
  } else {
    paths.assign(args.positional.begin() + 2, args.positional.end());
  }
  size_t total = args.Has("mbox") ? mbox_messages.size() : paths.size();
  auto next = [&](size_t i) {
    Item item;
    if (args.Has("mbox")) {
      item.label = absl::StrCat(args.Get("mbox"), "#", i + 1);
      item.source = std::move(mbox_messages[i]);
    } else {
      item.label = paths[i];
      item.source = ReadFile(paths[i]);
      if (args.Has("maildir")) {
        item.flags = FlagsFromMaildirName(BaseName(paths[i]));
        struct stat st {};
        if (stat(paths[i].c_str(), &st) == 0) item.mtime = st.st_mtim.tv_sec;
      }
    }
    MergeFlags(extra, &item.flags);
    return item;
  };
  auto stub = v1::MailboxService::NewStub(env.channel);
  Progress progress(env.progress, "append", total);
  Table table({"SOURCE", "ID", "SIZE"});
  std::vector<JsonObject> appended;
  uint64_t bytes = 0;
  for (size_t i = 0; i < total; ++i) {
    Item item = next(i);
    v1::AppendMessageRequest request;
    request.set_session(session);
    request.set_folder(folder);
    *request.mutable_flags() = item.flags;
    if (item.mtime != 0) request.mutable_receive_time()->set_seconds(item.mtime);
    request.set_source(std::move(item.source));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 600);
    v1::AppendMessageResponse response;
    grpc::Status status = stub->AppendMessage(&ctx, request, &response);
    if (!status.ok()) {
      progress.Finish();
      fprintf(stderr, "mailpool: appending %s failed after %zu of %zu\n", item.label.c_str(), i,
              total);
      return Fail(env, status, ctx);
    }
    bytes += response.size();
    progress.Update(i + 1, bytes);
    table.Add(
        {item.label, response.id().empty() ? "?" : response.id(), std::to_string(response.size())});
    appended.push_back(JsonObject()
                           .Set("source", item.label)
                           .Set("id", response.id())
                           .Set("size", static_cast<double>(response.size())));
  }
  progress.Finish();
  if (env.json) {
    JsonObject().Set("folder", folder).Set("appended", appended).Print();
  } else {
    table.Print();
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> TransferCommands() {
  return {
      {"export",
       "save a folder to an mbox file or a Maildir (progress bar)",
       R"(Usage: mailpool export SESSION --mbox FILE [--folder F] [--unread]
       mailpool export SESSION --maildir DIR [--folder F] [--unread]

Downloads every message of the current folder (or --folder), oldest first, into an mbox
file (mboxrd, appended to) or a Maildir (created if needed; flags kept in the file names,
the receive time as the file time). Shows a progress bar on a terminal (or --progress).
)",
       {"mbox=", "maildir=", "folder=", "unread"},
       Export},
      {"append",
       "store messages into a folder (IMAP; progress bar)",
       R"(Usage: mailpool append SESSION FOLDER FILE... [--flags FLAGS]
       mailpool append SESSION FOLDER --maildir DIR [--flags FLAGS]
       mailpool append SESSION FOLDER --mbox FILE [--flags FLAGS]

Stores RFC 5322 messages into FOLDER (IMAP APPEND): .eml files (- for stdin), every
message of a Maildir (flags from the file names, the file time as receive time), or of an
mbox file. --flags: a comma list (seen, flagged, draft, ...) given to each. Stops at the
first refusal. Shows a progress bar on a terminal (or --progress).
)",
       {"maildir=", "mbox=", "flags="},
       Append},
  };
}

}  // namespace mailpool::cli
