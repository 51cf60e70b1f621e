// The CLI's config file: `key = value` lines, `[context NAME]` sections, `#` comments
// (see kConfigHelp for the format and where it is looked for).
//
//   Config config = LoadConfig(args);
//   if (const Context* c = config.Find("prod")) use(c->values.at("addr"));
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cli.h"

namespace mailpool::cli {
namespace {

const std::set<std::string> kContextKeys = {"addr", "token-file",  "ca", "cert",
                                            "key",  "server-name", "tls"};
const std::set<std::string> kPathKeys = {"token-file", "ca", "cert", "key"};

std::string DefaultPath() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/mailpool/config");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home ? home : "", "/.config/mailpool/config");
}

std::string Dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string ResolvePath(const std::string& value, const std::string& config_path) {
  if (absl::StartsWith(value, "~/")) {
    const char* home = std::getenv("HOME");
    return absl::StrCat(home ? home : "", value.substr(1));
  }
  if (absl::StartsWith(value, "/")) return value;
  return absl::StrCat(Dir(config_path), "/", value);
}

}  // namespace

const Context* Config::Find(const std::string& name) const {
  for (const auto& c : contexts) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Config LoadConfig(const Args& args) {
  Config config;
  const char* env_path = std::getenv("MAILPOOL_CONFIG");
  bool named = args.Has("config") || (env_path != nullptr && *env_path != '\0');
  config.path = args.Has("config") ? args.Get("config") : named ? env_path : DefaultPath();
  std::ifstream in(config.path);
  if (!in) {
    if (named) Usage(absl::StrCat("cannot read the config file ", config.path));
    return config;
  }
  std::string line;
  int number = 0;
  Context* section = nullptr;
  auto bad = [&](const std::string& what) {
    Usage(absl::StrCat(config.path, ":", number, ": ", what));
  };
  while (std::getline(in, line)) {
    ++number;
    absl::string_view l = line;
    if (size_t hash = l.find('#'); hash != absl::string_view::npos) l = l.substr(0, hash);
    l = absl::StripAsciiWhitespace(l);
    if (l.empty()) continue;
    if (absl::ConsumePrefix(&l, "[")) {
      if (!absl::ConsumeSuffix(&l, "]") || !absl::ConsumePrefix(&l, "context ")) {
        bad("a section is [context NAME]");
      }
      std::string name(absl::StripAsciiWhitespace(l));
      if (name.empty() || name.find_first_of(" \t[]=") != std::string::npos) {
        bad("a context name is one word");
      }
      if (config.Find(name) != nullptr) bad(absl::StrCat("context ", name, " given twice"));
      config.contexts.push_back(Context{name, {}});
      section = &config.contexts.back();
      continue;
    }
    size_t eq = l.find('=');
    if (eq == absl::string_view::npos) bad("expected key = value");
    std::string key(absl::StripAsciiWhitespace(l.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(l.substr(eq + 1)));
    if (section == nullptr) {
      if (key != "current-context") bad(absl::StrCat("unknown key ", key, " outside a context"));
      config.current = value;
      continue;
    }
    if (kContextKeys.count(key) == 0) {
      bad(absl::StrCat("unknown key ", key,
                       " (addr, token-file, ca, cert, key, server-name, tls)"));
    }
    if (value.empty()) bad(absl::StrCat(key, " has no value"));
    if (key == "tls" && value != "true" && value != "false") bad("tls is true or false");
    section->values[key] = kPathKeys.count(key) ? ResolvePath(value, config.path) : value;
  }
  if (!config.current.empty() && config.Find(config.current) == nullptr) {
    Usage(absl::StrCat(config.path, ": current-context ", config.current, " is not defined"));
  }
  return config;
}

void SetCurrentContext(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  bool replaced = false;
  for (auto& line : lines) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(l, "[")) break;  // only before the first section
    if (absl::StartsWith(l, "current-context") &&
        absl::StripAsciiWhitespace(l.substr(15)).substr(0, 1) == "=") {
      line = absl::StrCat("current-context = ", name);
      replaced = true;
      break;
    }
  }
  if (!replaced) lines.insert(lines.begin(), absl::StrCat("current-context = ", name));
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& line : lines) out << line << '\n';
    out.flush();
    if (!out) Usage(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    Usage(absl::StrCat("cannot replace ", path));
  }
}

}  // namespace mailpool::cli
