"""Every mailpool.v1 message and enum value under one roof: `from mailpool.types import
EmailMessage, SearchCriteria, Flags`. The proto `Session` is exported as SessionInfo (the
name Session is the client's handle)."""
# flake8: noqa
from mailpool.v1.errors_pb2 import *
from mailpool.v1.mailbox_pb2 import *
from mailpool.v1.message_pb2 import *
from mailpool.v1.send_pb2 import *
from mailpool.v1.session_pb2 import *
from mailpool.v1.session_pb2 import Session as SessionInfo
