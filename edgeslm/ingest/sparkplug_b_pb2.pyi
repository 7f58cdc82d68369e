# Type stub for the protoc-generated sparkplug_b_pb2.py: protobuf builds its message classes at import time,
# so a type checker sees none of them. The messages are used through protobuf's own (untyped) API.
from typing import Any

DESCRIPTOR: Any
Payload: Any
