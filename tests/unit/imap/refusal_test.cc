#include "imap/refusal.h"

#include "gtest/gtest.h"

namespace mailpool::imap {
namespace {

using Code = absl::StatusCode;
using C = RefusedCommand;

struct Case {
  C command;
  const char* code;
  const char* text;
  Code want;
  const char* reason;
};

TEST(RefusalTest, CodesDecideFirst) {
  for (const Case& c : {
           Case{C::kCopy, "TRYCREATE", "x", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kSelect, "NONEXISTENT", "x", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCreate, "ALREADYEXISTS", "x", Code::kAlreadyExists, "FOLDER_EXISTS"},
           Case{C::kRename, "alreadyexists", "x", Code::kAlreadyExists, "FOLDER_EXISTS"},
           Case{C::kAppend, "TOOBIG", "x", Code::kResourceExhausted, "MESSAGE_TOO_BIG"},
           Case{C::kAppend, "OVERQUOTA", "x", Code::kResourceExhausted, "COMMAND_REFUSED"},
           Case{C::kOther, "LIMIT", "x", Code::kResourceExhausted, "COMMAND_REFUSED"},
           Case{C::kOther, "NOPERM", "x", Code::kPermissionDenied, "COMMAND_REFUSED"},
           Case{C::kOther, "READ-ONLY", "x", Code::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{C::kOther, "CANNOT", "x", Code::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{C::kOther, "BADCHARSET", "x", Code::kInvalidArgument, "COMMAND_REFUSED"},
           Case{C::kOther, "SERVERBUG", "x", Code::kInternal, "COMMAND_FAILED"},
           Case{C::kOther, "CORRUPTION", "x", Code::kDataLoss, "COMMAND_FAILED"},
           Case{C::kOther, "UNAVAILABLE", "x", Code::kUnavailable, "SERVER_BUSY"},
           Case{C::kOther, "INUSE", "x", Code::kUnavailable, "SERVER_BUSY"},
           // A code wins over text that says otherwise.
           Case{C::kCreate, "NOPERM", "already exists", Code::kPermissionDenied, "COMMAND_REFUSED"},
       }) {
    Refusal r = ClassifyRefusal(c.command, c.code, c.text);
    EXPECT_EQ(r.code, c.want) << c.code;
    EXPECT_EQ(r.reason, c.reason) << c.code;
  }
}

TEST(RefusalTest, WithoutACodeTheTextAndCommandDecide) {
  for (const Case& c : {
           Case{C::kCreate, "", "Mailbox already exists", Code::kAlreadyExists, "FOLDER_EXISTS"},
           Case{C::kCreate, "", "mailbox exists", Code::kAlreadyExists, "FOLDER_EXISTS"},
           Case{C::kRename, "", "Target mailbox already exists", Code::kAlreadyExists,
                "FOLDER_EXISTS"},
           Case{C::kRename, "", "Mailbox doesn't exist", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCopy, "", "Mailbox does not exist", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCopy, "", "No such folder", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kAppend, "", "Unknown mailbox", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kAppend, "", "Message too big", Code::kResourceExhausted, "MESSAGE_TOO_BIG"},
           Case{C::kAppend, "", "message exceeds size limit", Code::kResourceExhausted,
                "MESSAGE_TOO_BIG"},
           Case{C::kAppend, "", "Quota exceeded", Code::kResourceExhausted, "COMMAND_REFUSED"},
           Case{C::kOther, "", "Permission denied", Code::kPermissionDenied, "COMMAND_REFUSED"},
           Case{C::kSelect, "", "Select failed", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kStatus, "", "", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kDelete, "", "failed", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCreate, "", "Create failed", Code::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{C::kCopy, "", "Copy failed", Code::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{C::kOther, "", "Error in IMAP command", Code::kFailedPrecondition,
                "COMMAND_REFUSED"},
           // imap4d's code after the command name.
           Case{C::kAppend, "", "APPEND [TRYCREATE] failed", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCopy, "", "UID COPY [TRYCREATE] failed", Code::kNotFound, "FOLDER_NOT_FOUND"},
           Case{C::kCopy, "", "UID MOVE [TRYCREATE] failed", Code::kNotFound, "FOLDER_NOT_FOUND"},
           // An unknown code falls through to the text.
           Case{C::kCreate, "XWHATEVER", "already exists", Code::kAlreadyExists, "FOLDER_EXISTS"},
       }) {
    Refusal r = ClassifyRefusal(c.command, c.code, c.text);
    EXPECT_EQ(r.code, c.want) << c.text;
    EXPECT_EQ(r.reason, c.reason) << c.text;
  }
}

TEST(RefusalTest, ATaggedNoIsNeverUnavailableWithoutTheServerSayingSo) {
  for (C command : {C::kSelect, C::kStatus, C::kCreate, C::kDelete, C::kRename, C::kSubscribe,
                    C::kCopy, C::kAppend, C::kOther}) {
    for (const char* text : {"", "failed", "Internal error occurred", "try again"}) {
      EXPECT_NE(ClassifyRefusal(command, "", text).code, Code::kUnavailable) << text;
    }
  }
}

}  // namespace
}  // namespace mailpool::imap
