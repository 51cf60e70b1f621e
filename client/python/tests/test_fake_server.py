"""The wrapper's calls that the daemon does not implement yet, against an in-process fake
gRPC server: requests carry the session (body and x-mailpool-session header), pages are
followed, streams are joined, errors keep their detail. No mail servers needed."""
from __future__ import annotations

import unittest
from concurrent import futures

import grpc

import mailpool
from mailpool import DeleteMode, FlagOperation, View
from mailpool.v1 import (errors_pb2, mailbox_pb2, mailbox_pb2_grpc, message_pb2,
                         message_pb2_grpc, send_pb2, send_pb2_grpc, session_pb2,
                         session_pb2_grpc)

SID = "msfake_" + "a" * 32


def header(context) -> str:
    return dict(context.invocation_metadata()).get("x-mailpool-session", "")


class FakeSessions(session_pb2_grpc.SessionServiceServicer):
    def __init__(self) -> None:
        self.starts: list = []

    def StartSession(self, request, context):
        self.starts.append(request)
        if request.imap.credentials.password == "wrong":
            detail = errors_pb2.ErrorDetail(reason="AUTH_FAILED", command="LOGIN alice ***",
                                            server_reply="a1 NO [AUTHENTICATIONFAILED] nope")
            context.set_trailing_metadata((("mailpool-error-bin", detail.SerializeToString()),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "IMAP: a1 NO [AUTHENTICATIONFAILED] nope")
        return session_pb2.StartSessionResponse(session=session_pb2.Session(
            id=SID, name=request.name, protocol=session_pb2.PROTOCOL_IMAP,
            state=session_pb2.SESSION_STATE_READY))

    def CloseSession(self, request, context):
        return session_pb2.CloseSessionResponse(server_reply="* BYE")


class FakeMailbox(mailbox_pb2_grpc.MailboxServiceServicer):
    def __init__(self) -> None:
        self.requests: list = []

    def _check(self, request, context) -> None:
        self.requests.append(request)
        if request.session != SID or header(context) != SID:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session missing")

    def ListMessages(self, request, context):
        self._check(request, context)
        start = int(request.page_token or 0)
        size = request.page_size or 50
        ids = list(range(7))[start:start + size]
        nxt = str(start + size) if start + size < 7 else ""
        return mailbox_pb2.ListMessagesResponse(
            messages=[message_pb2.EmailMessage(id=f"m{i}", subject=f"s{i}") for i in ids],
            next_page_token=nxt, total_count=7)

    def SearchMessages(self, request, context):
        self._check(request, context)
        return mailbox_pb2.SearchMessagesResponse(messages=[
            message_pb2.EmailMessage(id="found", subject=request.criteria.subject)])

    def GetMessage(self, request, context):
        self._check(request, context)
        if request.id == "gone":
            context.abort(grpc.StatusCode.NOT_FOUND, "message gone")
        return mailbox_pb2.GetMessageResponse(message=message_pb2.EmailMessage(
            id=request.id, text_body=mailbox_pb2.MessageView.Name(request.view)))

    def StreamMessage(self, request, context):
        self._check(request, context)
        for i in range(3):
            yield mailbox_pb2.StreamMessageResponse(data=b"abc"[i:i + 1], offset=i, total_size=3)

    def GetAttachment(self, request, context):
        self._check(request, context)
        yield mailbox_pb2.GetAttachmentResponse(attachment=message_pb2.Attachment(
            file_name="a.txt", part_id=request.part_id))
        yield mailbox_pb2.GetAttachmentResponse(data=b"hello ", offset=0)
        yield mailbox_pb2.GetAttachmentResponse(data=b"world", offset=6)

    def UpdateFlags(self, request, context):
        self._check(request, context)
        return mailbox_pb2.UpdateFlagsResponse(messages=[
            mailbox_pb2.MessageFlags(id=i, flags=request.flags) for i in request.ids])

    def DeleteMessages(self, request, context):
        self._check(request, context)
        return mailbox_pb2.DeleteMessagesResponse(deleted_count=len(request.ids))

    def WatchMailbox(self, request, context):
        self._check(request, context)
        yield mailbox_pb2.WatchMailboxResponse(type=mailbox_pb2.MAILBOX_EVENT_TYPE_READY)
        yield mailbox_pb2.WatchMailboxResponse(type=mailbox_pb2.MAILBOX_EVENT_TYPE_NEW, id="m9")


class FakeSend(send_pb2_grpc.SendServiceServicer):
    def SendMessage(self, request, context):
        if request.session != SID or header(context) != SID:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session missing")
        which = request.WhichOneof("content")
        return send_pb2.SendMessageResponse(
            state=send_pb2.SEND_STATE_SENT, server_reply=f"250 ok {which}",
            message_id=request.message.subject if which == "message" else "raw",
            recipients=[send_pb2.RecipientResult(address=a, accepted=True)
                        for a in request.envelope.rcpt_to])

    def ListOutbox(self, request, context):
        start = int(request.page_token or 0)
        nxt = "" if start else "1"
        return send_pb2.ListOutboxResponse(
            sends=[send_pb2.SendStatus(send_id=f"s{start}")], next_page_token=nxt)


class FakeMessages(message_pb2_grpc.MessageServiceServicer):
    def BuildSource(self, request, context):
        m = request.message
        return message_pb2.BuildSourceResponse(
            source=f"From: {getattr(m, 'from').address}\r\nSubject: {m.subject}\r\n".encode(),
            message_id="x@y")


class FakeServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        cls.mailbox = FakeMailbox()
        cls.sessions = FakeSessions()
        session_pb2_grpc.add_SessionServiceServicer_to_server(cls.sessions, cls.server)
        mailbox_pb2_grpc.add_MailboxServiceServicer_to_server(cls.mailbox, cls.server)
        send_pb2_grpc.add_SendServiceServicer_to_server(FakeSend(), cls.server)
        message_pb2_grpc.add_MessageServiceServicer_to_server(FakeMessages(), cls.server)
        port = cls.server.add_insecure_port("127.0.0.1:0")
        cls.server.start()
        cls.client = mailpool.Client(f"127.0.0.1:{port}", timeout=10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()
        cls.server.stop(None)

    def start(self) -> mailpool.Session:
        return self.client.start_imap("h", user="u", password="p")

    def test_oauth2_refresh_credentials(self) -> None:
        refresh = mailpool.OAuth2Refresh(refresh_token="1//rt", provider="google")
        with self.client.start_imap("h", user="u@gmail.com", token=refresh):
            c = self.sessions.starts[-1].imap.credentials
            self.assertEqual(c.WhichOneof("secret"), "oauth2_refresh")
            self.assertEqual((c.oauth2_refresh.refresh_token, c.oauth2_refresh.provider),
                             ("1//rt", "google"))
        with self.client.start_imap("h", user="u", token="ya29.access"):
            self.assertEqual(self.sessions.starts[-1].imap.credentials.oauth2_token, "ya29.access")

    def test_messages_follow_pages_and_limit(self) -> None:
        with self.start() as s:
            self.assertEqual([m.id for m in s.messages(page_size=3)],
                             [f"m{i}" for i in range(7)])
            self.assertEqual([m.id for m in s.messages(limit=4)], ["m0", "m1", "m2", "m3"])
            page = s.list_messages(page_size=2, page_token="2", view=View.BASIC)
            self.assertEqual(([m.id for m in page.messages], page.next_page_token), (["m2", "m3"], "4"))
            req = self.mailbox.requests[-1]
            self.assertEqual(req.view, mailbox_pb2.MESSAGE_VIEW_BASIC)
            self.assertEqual(req.order, mailbox_pb2.MESSAGE_ORDER_NEWEST_FIRST)

    def test_get_message_search_stream_attachment(self) -> None:
        with self.start() as s:
            self.assertEqual(s.get_message("m1").text_body, "MESSAGE_VIEW_FULL")
            with self.assertRaises(mailpool.NotFound):
                s.get_message("gone")
            found = list(s.search(subject="invoice", limit=5))
            self.assertEqual([(m.id, m.subject) for m in found], [("found", "invoice")])
            self.assertEqual(b"".join(s.stream_message("m1")), b"abc")
            meta, data = s.get_attachment("m1", part_id="2")
            self.assertEqual((meta.file_name, meta.part_id, data), ("a.txt", "2", b"hello world"))
            # Streamed: metadata before the first chunk, then the chunks as the server sent them.
            stream = s.stream_attachment("m1", part_id="3")
            self.assertEqual(stream.attachment.part_id, "3")
            self.assertEqual(list(stream), [b"hello ", b"world"])
            # Leaving the loop early ends the call.
            for chunk in s.stream_attachment("m1", part_id="2"):
                self.assertEqual(chunk, b"hello ")
                break

    def test_search_takes_from_and_aware_datetimes(self) -> None:
        import datetime
        cet = datetime.timezone(datetime.timedelta(hours=1))
        with self.start() as s:
            list(s.search(from_="alice@x.test", since=datetime.datetime(2024, 3, 1, 9, tzinfo=cet),
                          before=datetime.datetime(2024, 3, 2)))   # naive: UTC
            c = self.mailbox.requests[-1].criteria
            self.assertEqual(c.from_, "alice@x.test")
            self.assertEqual(getattr(c, "from"), "alice@x.test")
            self.assertEqual(mailpool.to_datetime(c.since),
                             datetime.datetime(2024, 3, 1, 8, tzinfo=datetime.timezone.utc))
            self.assertEqual(mailpool.to_datetime(c.before).isoformat(), "2024-03-02T00:00:00+00:00")
            self.assertIsNotNone(mailpool.to_datetime(c.since).tzinfo)
            self.assertIsNone(mailpool.to_datetime(c.sent_since))  # unset

    def test_from_attribute(self) -> None:
        m = mailpool.message(from_="Alice <a@x.test>", to="b@x.test")
        self.assertEqual((m.from_.name, m.from_.address), ("Alice", "a@x.test"))
        m.from_ = "Bob <b@x.test>"
        self.assertEqual(getattr(m, "from").address, "b@x.test")

    def test_flags_delete_watch(self) -> None:
        with self.start() as s:
            out = s.update_flags(["m1", "m2"], FlagOperation.ADD, flagged=True)
            self.assertEqual([(m.id, m.flags.flagged) for m in out], [("m1", True), ("m2", True)])
            self.assertTrue(s.mark_read("m3")[0].flags.seen)
            self.assertEqual(s.delete(["m1", "m2"], mode=DeleteMode.FLAG_ONLY).deleted_count, 2)
            self.assertEqual(self.mailbox.requests[-1].mode, mailbox_pb2.DELETE_MODE_FLAG_ONLY)
            events = list(s.watch())
            self.assertEqual([e.type for e in events], [mailbox_pb2.MAILBOX_EVENT_TYPE_READY,
                                                        mailbox_pb2.MAILBOX_EVENT_TYPE_NEW])

    def test_send_and_build(self) -> None:
        msg = mailpool.message(from_="a@x.test", to="b@x.test", subject="hi", text="t")
        with self.start() as s:
            r = s.send(msg, rcpt_to=["c@x.test"])
            self.assertEqual((r.server_reply, r.message_id), ("250 ok message", "hi"))
            self.assertEqual([x.address for x in r.recipients], ["c@x.test"])
            self.assertEqual(s.send(source=b"raw").server_reply, "250 ok source")
            with self.assertRaises(ValueError):
                s.send(msg, source=b"both")
        self.assertEqual([x.send_id for x in self.client.outbox()], ["s0", "s1"])
        self.assertIn(b"Subject: hi", self.client.build_source(msg).source)

    def test_error_detail_from_trailer(self) -> None:
        with self.assertRaises(mailpool.Unauthenticated) as cm:
            self.client.start_imap("h", user="u", password="wrong")
        e = cm.exception
        self.assertEqual((e.reason, e.command), ("AUTH_FAILED", "LOGIN alice ***"))
        self.assertEqual(e.server_reply, "a1 NO [AUTHENTICATIONFAILED] nope")

    def test_unimplemented_service(self) -> None:
        with self.assertRaises(mailpool.Unimplemented):
            self.client.parse_source(b"Subject: x\r\n\r\n")  # FakeMessages lacks it


if __name__ == "__main__":
    unittest.main()
