// The RFC 7677 section 3 SCRAM-SHA-256 example exchange (user "user", password "pencil"),
// base64-encoded as the protocol clients send and receive it, for transcript tests.
#ifndef MAILPOOL_TESTS_UNIT_WIRE_SCRAM_VECTORS_H_
#define MAILPOOL_TESTS_UNIT_WIRE_SCRAM_VECTORS_H_

#include <string>

#include "wire/sasl.h"

namespace mailpool::testing::rfc7677 {

inline constexpr char kUser[] = "user";
inline constexpr char kPassword[] = "pencil";
inline constexpr char kClientNonce[] = "rOprNGfwEbeRWgbNEkqO";

inline std::string ClientFirst() { return wire::Base64Encode("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"); }
inline std::string ServerFirst() {
  return wire::Base64Encode(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
}
inline std::string ClientFinal() {
  return wire::Base64Encode(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
}
inline std::string ServerFinal() {
  return wire::Base64Encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}
// The right signature with one byte changed: a server that does not know the password.
inline std::string WrongServerFinal() {
  return wire::Base64Encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl96G4=");
}

}  // namespace mailpool::testing::rfc7677

#endif  // MAILPOOL_TESTS_UNIT_WIRE_SCRAM_VECTORS_H_
