#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ (run from anywhere; idempotent).

Protocol seeds come from the transcript tests (tests/unit/{imap,pop3,smtp}/*_test.cc): the
server lines of each test, once for the fuzzed login and once per client command after the
command's line, with the command selector byte the target expects (see each *_fuzzer.cc).
IMAP tags become "T" (the target puts the tag of the command in flight back). MIME, ID and
validation seeds are written here. Files are named by content hash, so rerunning adds
nothing twice. Seeds of fixed findings are committed by hand as regress-*.
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = os.path.join(root, "tests", "fuzz", "corpus")


def write(target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def unescape(text):
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")


def tests_of(path):
    """Yields, per TEST, the list of (kind, text) transcript lines in order."""
    src = open(path, encoding="utf-8").read()
    for body in re.split(r"\nTEST(?:_F|_P)?\(", src)[1:]:
        lines = []
        for m in re.finditer(r"^\s*(S:|S\+|S~|C:) ?(.*)$", body, re.M):
            kind, text = m.group(1), m.group(2)
            if text.endswith(')")') or text.endswith(')"'):
                text = text[: text.rfind(')"')]
            lines.append((kind, text))
        if lines:
            yield lines


def server_bytes(lines, tag_re):
    out = b""
    for kind, text in lines:
        if kind == "C:":
            continue
        raw = text.encode("utf-8")
        if kind == "S~":
            raw = unescape(text)
        if tag_re is not None:
            raw = re.sub(tag_re, b"T ", raw)
        out += raw + (b"\r\n" if kind == "S:" else b"")
    return out


def protocol_seeds(target, folder, commands, tag_re, header):
    for path in sorted(os.listdir(os.path.join(root, "tests", "unit", folder))):
        if not path.endswith("_test.cc"):
            continue
        for lines in tests_of(os.path.join(root, "tests", "unit", folder, path)):
            write(target, header(0) + server_bytes(lines, tag_re))
            for i, (kind, text) in enumerate(lines):
                if kind != "C:":
                    continue
                for pattern, selector in commands:
                    if re.search(pattern, text):
                        write(target, header(selector) + server_bytes(lines[i + 1 :], tag_re))
                        break


imap_commands = [
    (r"^a\d+ UID FETCH", 5), (r"^a\d+ UID SEARCH", 4), (r"^a\d+ UID STORE", 6),
    (r"^a\d+ UID COPY", 7), (r"^a\d+ UID MOVE", 8), (r"^a\d+ UID EXPUNGE", 9),
    (r"^a\d+ EXPUNGE", 10), (r"^a\d+ APPEND", 11), (r"^a\d+ IDLE", 12), (r"^a\d+ NOOP", 13),
    (r"^a\d+ LOGOUT", 14), (r"^a\d+ (LIST|LSUB)", 1), (r"^a\d+ STATUS", 3),
    (r"^a\d+ (SELECT|EXAMINE)", 2), (r"^a\d+ CREATE", 15), (r"^a\d+ DELETE", 15 + 16),
    (r"^a\d+ RENAME", 15 + 32), (r"^a\d+ SUBSCRIBE", 15 + 48),
]
# byte 0 command, byte 1 profile (0: rich capabilities), byte 2 read pattern
protocol_seeds("imap_client", "imap", imap_commands, rb"(?m)^a\d+ ", lambda c: bytes([c, 0, 0]))
protocol_seeds("imap_client", "imap", imap_commands[:6], rb"(?m)^a\d+ ", lambda c: bytes([c, 1, 1]))

pop3_commands = [(r"^STAT", 10), (r"^LIST", 1), (r"^UIDL", 2), (r"^TOP", 3), (r"^RETR", 4),
                 (r"^DELE", 5), (r"^RSET", 6), (r"^NOOP", 7), (r"^QUIT", 8)]
protocol_seeds("pop3_client", "pop3", pop3_commands, None, lambda c: bytes([c, 0]))

smtp_commands = [(r"^MAIL FROM:<>", 2), (r"^MAIL FROM", 1), (r"^VRFY", 3), (r"^NOOP", 4),
                 (r"^QUIT", 5)]
protocol_seeds("smtp_client", "smtp", smtp_commands, None, lambda c: bytes([c, 0]))

# Line reader: byte 0 read pattern, byte 1 line bound / 4, byte 2 raw-take rhythm.
for data in [b"one\r\ntwo\nthree\r\n", b"a\r\n\r\n\n" + b"x" * 300 + b"\r\n",
             b"* 1 FETCH (BODY[] {5}\r\nhello)\r\n", b"\r\r\n\n\r"]:
    write("line_reader", bytes([0, 16, 0]) + data)
    write("line_reader", bytes([1, 1, 3]) + data)

# MIME: byte 0 parse/build options.
mime_messages = [
    b"From: A <a@example.test>\r\nTo: b@example.test\r\nSubject: =?UTF-8?B?w6l0w6k=?=\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <1@example.test>\r\n\r\nHello\r\n",
    b"From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
    b"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=E9 =\r\nsoft\r\n--b2\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b2--\r\n"
    b"--b1\r\nContent-Type: image/png; name=\"a.png\"\r\nContent-Disposition: attachment; "
    b"filename*=UTF-8''%C3%A9.png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgo=\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--b1--\r\n",
    b"Subject: broken\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nno end",
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\n",
    b"To: undisclosed-recipients:;\r\nFrom: \"Q\\\"uote\" <q@x>, (comment) c@y\r\n"
    b"Subject: =?ISO-2022-JP?B?GyRCJEgbKEI=?= =?bogus?Q?x?=\r\n\r\n",
]
for m in mime_messages:
    write("mime", bytes([0]) + m)
    write("mime", bytes([16 | 4]) + m)
    write("mime", bytes([1]) + m)

# IDs: byte 0 picks the decoder (see imap_ids_fuzzer.cc).
for which, text in [(0, b"\x00\x00\x00\x07\x00\x00\x00\x2aINBOX"), (0, b"i1.AAAAAAAAAAAAAAAA"),
                    (1 + 8 * 2, b"a\x00b"), (2, b"1:5,7,9:12"), (2, b"4294967295:1"),
                    (3, b"&AOk-t&AOk-/Entw&APw-rfe"), (3, b"&-&&"),
                    (4, b"17-Jul-1996 02:44:25 -0700"), (4, b" 1-Feb-2024 00:00:00 +0000"),
                    (5, b"OK [UIDVALIDITY 3] x"), (5, b"IMAP4rev1 AUTH=PLAIN {12}"),
                    (6, b"needs \"quote\"\\"), (7, b"inbox")]:
    write("imap_ids", bytes([which]) + text)


def validation_seeds():
    with tempfile.TemporaryDirectory() as tmp:
        proto = os.path.join(root, "proto")
        subprocess.run(["protoc", "-I" + proto, "--python_out=" + tmp] +
                       [os.path.join(proto, "mailpool", "v1", f)
                        for f in ("session.proto", "errors.proto")], check=True)
        sys.path.insert(0, tmp)
        from mailpool.v1 import session_pb2 as s

        def start(**kw):
            return s.StartSessionRequest(**kw).SerializeToString()

        cred = s.Credentials(user="alice", password="pw")
        ep = s.ServerEndpoint(host="127.0.0.1", port=143, security=1)
        for data in [
            start(imap=s.ImapOptions(server=ep, credentials=cred, initial_folder="INBOX")),
            start(name="n1", pop3=s.Pop3Options(server=ep, credentials=cred)),
            start(smtp=s.SmtpOptions(server=ep, credentials=s.Credentials(user="bob",
                                                                          oauth2_token="t"))),
            start(pop3_smtp=s.Pop3SmtpOptions(pop3=ep, credentials=cred)),
        ]:
            write("validation", bytes([0]) + data)
        write("validation", bytes([2]) + cred.SerializeToString())
        write("validation", bytes([3]) + b"session-1")


validation_seeds()
