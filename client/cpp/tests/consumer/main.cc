// Uses the installed mailpool client: builds a message address and asks a daemon that is
// not there (the call must fail with UNAVAILABLE, proving the gRPC stack links and runs).
#include <iostream>

#include "mailpool/client.h"

int main() {
  mailpool::v1::Address a = mailpool::MakeAddress("Alice <alice@example.test>");
  mailpool::ClientOptions options;
  options.timeout = absl::Seconds(5);
  mailpool::Client client("unix:/nonexistent/mailpool.sock", options);
  absl::Status st = client.GetDefaultTimeout().status();
  std::cout << a.name() << " " << a.address() << " " << absl::StatusCodeToString(st.code())
            << "\n";
  return a.address() == "alice@example.test" && absl::IsUnavailable(st) ? 0 : 1;
}
