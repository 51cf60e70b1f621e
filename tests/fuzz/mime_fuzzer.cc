// Fuzzes the MIME parse path (mime/mime.cc over GMime) with each parse option, then builds
// the parsed message again (the ParseSource -> BuildSource round trip callers use).
//
// Input: byte 0 the options; the rest is the message source.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "mime/mime.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailpool;
  fuzz::Input in(data, size);
  uint8_t flags = in.Byte();
  mime::ParseOptions options;
  options.headers_only = flags & 1;
  options.omit_attachment_content = flags & 2;
  options.include_source = flags & 4;
  options.max_attachment_bytes = (flags & 8) ? 64 : 0;
  std::vector<std::string> warnings;
  v1::EmailMessage message = mime::Parse(in.rest(), options, &warnings);
  if (warnings.size() > mime::kMaxWarnings + 1) __builtin_trap();
  if (flags & 16) {
    v1::BuildOptions build;
    std::string id;
    (void)mime::Build(message, build, &id);
  }
  return 0;
}
