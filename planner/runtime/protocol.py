"""Wire format between the edge client and the cloud server: length-prefixed binary frames.

A frame is a fixed 12-byte header (magic, version, message type, flags, body length; network byte
order) followed by the body. Every field is parsed with `struct`, bounded and validated before use;
the only free-form metadata (WELCOME, HEALTH_OK) is size-capped JSON checked against a schema.
Nothing received is ever unpickled or `torch.load`ed.

Conversation: the client sends HELLO (shared token; a body of at most MAX_HELLO_BYTES, which a server checks
on the header before reading any of it) first and gets WELCOME; then any number of
HEALTH -> HEALTH_OK and INFER -> RESULT exchanges, one at a time. Any ERROR from the server ends
the connection.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from planner import config
from planner.errors import PlannerError

MAGIC = b"PLRT"
VERSION = 1
HEADER = struct.Struct("!4sBBHI")  # magic, version, type, flags, body length
HEADER_SIZE = HEADER.size
FLAG_BATCH_TIMINGS = 0x0001  # INFER: "send me the batch timings"; RESULT: the body carries them (see Scores)
FEATURE_BATCH_TIMINGS = "batch-timings"  # in WELCOME's "features": the server understands FLAG_BATCH_TIMINGS

MAX_TOKEN_BYTES = 256
MAX_HELLO_BYTES = 4096  # the largest HELLO body a server reads before it knows who is talking
MAX_MODEL_BYTES = 255
MAX_ERROR_BYTES = 1024
MAX_JSON_BYTES = 4096
MAX_SCORE_DIMS = 4
MAX_SCORES = 1 << 24
DEFAULT_MAX_FRAME = config.DEFAULT_MAX_FRAME


class MsgType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    HEALTH = 3
    HEALTH_OK = 4
    INFER = 5
    RESULT = 6
    ERROR = 7


class ErrorCode(enum.IntEnum):
    BAD_FRAME = 1  # bad magic, malformed or truncated body
    TOO_LARGE = 2  # body length beyond the server's max frame
    BAD_VERSION = 3
    UNKNOWN_TYPE = 4
    AUTH = 5  # missing HELLO or wrong token
    WRONG_MODEL = 6  # INFER for a model this server does not hold
    BAD_PAYLOAD = 7  # the codec payload does not decode (CodecError)
    UNSUPPORTED = 8  # a cut or bitwidth the model was not trained for (CompressError)
    REJECTED = 9  # any other PlannerError raised by the handler
    INTERNAL = 10  # a bug in the handler; details only in the server log
    TIMEOUT = 11  # the client sent nothing (or not enough) within the read timeout
    BUSY = 12  # too many connections
    SHUTTING_DOWN = 13


class ProtocolError(PlannerError):
    """Bytes that are not a valid frame or message; `code` is the ERROR code to answer with."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_FRAME) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


@dataclass(frozen=True)
class Header:
    type: MsgType
    flags: int
    length: int


def pack_header(msg_type: MsgType, length: int, flags: int = 0) -> bytes:
    return HEADER.pack(MAGIC, VERSION, int(msg_type), flags, length)


def parse_header(data: bytes, max_body: int) -> Header:
    """Validate a 12-byte header; raise ProtocolError (with the code to reply) on anything unexpected."""
    if len(data) != HEADER_SIZE:
        raise ProtocolError(f"truncated frame header: {len(data)} of {HEADER_SIZE} bytes")
    magic, version, msg_type, flags, length = HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r} (expected {MAGIC!r}): not a planner frame")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version} (this side speaks {VERSION})",
                            ErrorCode.BAD_VERSION)
    if msg_type not in MsgType._value2member_map_:
        raise ProtocolError(f"unknown message type {msg_type}", ErrorCode.UNKNOWN_TYPE)
    allowed = FLAG_BATCH_TIMINGS if msg_type in (MsgType.INFER, MsgType.RESULT) else 0
    if flags & ~allowed:
        raise ProtocolError(f"unsupported frame flags 0x{flags:04x} on {MsgType(msg_type).name} (version {VERSION} "
                            f"defines 0x{allowed:04x} there)")
    if length > max_body:
        raise ProtocolError(f"frame body of {length} bytes exceeds the limit of {max_body} bytes",
                            ErrorCode.TOO_LARGE)
    return Header(MsgType(msg_type), flags, length)


class _Reader:
    """Bounds-checked cursor over a message body."""

    def __init__(self, body: bytes, what: str) -> None:
        self.body = memoryview(body)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise ProtocolError(f"truncated {self.what} body: needs {self.pos + n} bytes, has {len(self.body)}")
        out = self.body[self.pos:self.pos + n].tobytes()
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def text(self, n: int, limit: int) -> str:
        if n > limit:
            raise ProtocolError(f"{self.what}: string of {n} bytes exceeds {limit}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{self.what}: string is not UTF-8") from exc

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.pos)

    def end(self) -> None:
        if self.pos != len(self.body):
            raise ProtocolError(f"{self.what} body has {len(self.body) - self.pos} trailing bytes")


def _utf8(text: str, limit: int, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise ProtocolError(f"{what} of {len(raw)} bytes exceeds {limit}")
    return raw


def _json_body(obj: dict[str, Any], schema: dict[str, type | tuple[type, ...]], what: str) -> bytes:
    _check_schema(obj, schema, what)
    raw = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(raw) > MAX_JSON_BYTES:
        raise ProtocolError(f"{what} metadata of {len(raw)} bytes exceeds {MAX_JSON_BYTES}")
    return raw


def _json_parse(body: bytes, schema: dict[str, type | tuple[type, ...]], what: str,
                optional: dict[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    if len(body) > MAX_JSON_BYTES:
        raise ProtocolError(f"{what} metadata of {len(body)} bytes exceeds {MAX_JSON_BYTES}")
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"{what} metadata is not valid JSON: {exc}") from exc
    _check_schema(obj, schema, what)
    present = {k: t for k, t in (optional or {}).items() if isinstance(obj, dict) and k in obj}
    _check_schema(obj, present, what)
    return {k: obj[k] for k in (*schema, *present)}


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def _check_schema(obj: Any, schema: dict[str, type | tuple[type, ...]], what: str) -> None:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} metadata must be a JSON object, got {type(obj).__name__}")
    for key, typ in schema.items():
        if key not in obj:
            raise ProtocolError(f"{what} metadata lacks {key!r}")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise ProtocolError(f"{what} metadata {key!r} has type {type(value).__name__}")


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Hello:
    """Client -> server, first frame of every connection: the shared token ('' when none)."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    token: str = ""
    _LEN: ClassVar[struct.Struct] = struct.Struct("!H")

    def to_body(self) -> bytes:
        raw = _utf8(self.token, MAX_TOKEN_BYTES, "token")
        return self._LEN.pack(len(raw)) + raw

    @classmethod
    def from_body(cls, body: bytes) -> Hello:
        r = _Reader(body, "HELLO")
        (n,) = r.unpack(cls._LEN)
        token = r.text(n, MAX_TOKEN_BYTES)
        r.end()
        return cls(token)


_NUM = (int, float)
WELCOME_SCHEMA: dict[str, Any] = {"model": str, "max_frame": int, "server": str}
# the identity a server announces (None: it has none): the model's weights digest (`modelspec.state_sha256`), its
# autoencoder id and raw-quantizer id; the edge refuses a server that leaves out one it has
IDENTITY_KEYS = ("weights_sha256", "autoencoder", "quantizer")
WELCOME_OPTIONAL: dict[str, Any] = {**dict.fromkeys(IDENTITY_KEYS, (str, type(None))), "features": str}
HEALTH_SCHEMA: dict[str, Any] = {"status": str, "model": str, "uptime_s": _NUM, "requests": int,
                                 "errors": int, "connections": int, "workers": int, "max_frame": int}


@dataclass(frozen=True)
class Welcome:
    """Server -> client after a good HELLO: which model it serves and its frame limit."""

    TYPE: ClassVar[MsgType] = MsgType.WELCOME
    info: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> bytes:
        return _json_body(self.info, WELCOME_SCHEMA, "WELCOME")

    @classmethod
    def from_body(cls, body: bytes) -> Welcome:
        return cls(_json_parse(body, WELCOME_SCHEMA, "WELCOME", WELCOME_OPTIONAL))


@dataclass(frozen=True)
class Health:
    """Client -> server: are you alive, what do you serve?"""

    TYPE: ClassVar[MsgType] = MsgType.HEALTH

    def to_body(self) -> bytes:
        return b""

    @classmethod
    def from_body(cls, body: bytes) -> Health:
        _Reader(body, "HEALTH").end()
        return cls()


@dataclass(frozen=True)
class HealthOk:
    """Server -> client: status counters (schema HEALTH_SCHEMA)."""

    TYPE: ClassVar[MsgType] = MsgType.HEALTH_OK
    info: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> bytes:
        return _json_body(self.info, HEALTH_SCHEMA, "HEALTH_OK")

    @classmethod
    def from_body(cls, body: bytes) -> HealthOk:
        return cls(_json_parse(body, HEALTH_SCHEMA, "HEALTH_OK"))


@dataclass(frozen=True)
class Infer:
    """Client -> server: run the tail of `model` on a codec payload; `batch_timings` (the frame flag
    FLAG_BATCH_TIMINGS, sent only to a server whose WELCOME lists the feature) asks for the batch wait and size."""

    TYPE: ClassVar[MsgType] = MsgType.INFER
    request_id: int
    model: str
    payload: bytes
    batch_timings: bool = False

    @property
    def flags(self) -> int:
        return FLAG_BATCH_TIMINGS if self.batch_timings else 0
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!QB")

    def to_body(self) -> bytes:
        raw = _utf8(self.model, MAX_MODEL_BYTES, "model name")
        if not raw or not self.payload:
            raise ProtocolError("INFER needs a model name and a non-empty payload")
        return self._HEAD.pack(self.request_id, len(raw)) + raw + bytes(self.payload)

    @property
    def frame_size(self) -> int:
        """Bytes of this message's whole frame (header included), without encoding it."""
        return HEADER_SIZE + self._HEAD.size + len(self.model.encode("utf-8")) + len(self.payload)

    @classmethod
    def from_body(cls, body: bytes) -> Infer:
        r = _Reader(body, "INFER")
        request_id, n = r.unpack(cls._HEAD)
        model = r.text(n, MAX_MODEL_BYTES)
        payload = r.rest()
        if not model or not payload:
            raise ProtocolError("INFER without a model name or with an empty payload")
        return cls(request_id, model, payload)


TIMING_FIELDS = ("queue_wait_ms", "decode_ms", "tail_ms", "server_ms")


@dataclass(frozen=True)
class Scores:
    """Server -> client: class scores (float32, up to 4-D) and the server-side timings in ms.

    `server_ms` spans from the request's last byte received to the reply ready to send, so
    `client wall time - server_ms` is the network part (transfers + round trip). `queue_wait_ms` is all the
    wait before compute; to a client that asked (FLAG_BATCH_TIMINGS) the body ends with the part of it spent
    waiting for a dynamic batch to form (`batch_wait_ms`) and the inputs computed together (`batch_size`, 0: not
    batched).
    """

    TYPE: ClassVar[MsgType] = MsgType.RESULT
    request_id: int
    scores: np.ndarray
    queue_wait_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    server_ms: float = 0.0
    batch_wait_ms: float | None = None  # None: not sent (an older server, or a client that did not ask)
    batch_size: int = 0
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!QddddB")
    _BATCH: ClassVar[struct.Struct] = struct.Struct("!dI")

    @property
    def flags(self) -> int:
        return 0 if self.batch_wait_ms is None else FLAG_BATCH_TIMINGS
    _DIM: ClassVar[struct.Struct] = struct.Struct("!I")

    def to_body(self) -> bytes:
        scores = np.asarray(self.scores, dtype="<f4")
        if scores.ndim > MAX_SCORE_DIMS or scores.size > MAX_SCORES:
            raise ProtocolError(f"scores of shape {scores.shape} exceed {MAX_SCORE_DIMS} dims / {MAX_SCORES} values")
        times = [getattr(self, k) for k in TIMING_FIELDS]
        _check_times(times)
        dims = b"".join(self._DIM.pack(d) for d in scores.shape)
        batch = b""
        if self.batch_wait_ms is not None:
            _check_times([self.batch_wait_ms])
            batch = self._BATCH.pack(self.batch_wait_ms, self.batch_size)
        return self._HEAD.pack(self.request_id, *times, scores.ndim) + dims + scores.tobytes(order="C") + batch

    @classmethod
    def from_body(cls, body: bytes, batch_timings: bool = False) -> Scores:
        r = _Reader(body, "RESULT")
        request_id, *times, ndim = r.unpack(cls._HEAD)
        _check_times(times)
        if ndim > MAX_SCORE_DIMS:
            raise ProtocolError(f"RESULT scores have {ndim} dims (at most {MAX_SCORE_DIMS})")
        shape = tuple(r.unpack(cls._DIM)[0] for _ in range(ndim))
        count = math.prod(shape)
        if count > MAX_SCORES:
            raise ProtocolError(f"RESULT scores of shape {shape} exceed {MAX_SCORES} values")
        data = r.take(4 * count)
        batch = r.unpack(cls._BATCH) if batch_timings else (None, 0)
        r.end()
        _check_times([t for t in batch[:1] if t is not None])
        scores = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(shape)
        return cls(request_id, scores, *times, *batch)

    def timings(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in TIMING_FIELDS}


def _check_times(times: list[float]) -> None:
    for t in times:
        if not (math.isfinite(t) and t >= 0.0):
            raise ProtocolError(f"RESULT timing {t!r} is not a finite non-negative number")


@dataclass(frozen=True)
class Error:
    """Server -> client: what was wrong (`request_id` 0 when not tied to a request); the server then closes."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: ErrorCode
    message: str
    request_id: int = 0
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!QHH")

    def to_body(self) -> bytes:
        raw = self.message.encode("utf-8", errors="replace")
        if len(raw) > MAX_ERROR_BYTES:
            raw = raw[:MAX_ERROR_BYTES - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
        return self._HEAD.pack(self.request_id, int(self.code), len(raw)) + raw

    @classmethod
    def from_body(cls, body: bytes) -> Error:
        r = _Reader(body, "ERROR")
        request_id, code, n = r.unpack(cls._HEAD)
        if n > MAX_ERROR_BYTES:
            raise ProtocolError(f"ERROR message of {n} bytes exceeds {MAX_ERROR_BYTES}")
        message = r.take(n).decode("utf-8", errors="replace")
        r.end()
        if code not in ErrorCode._value2member_map_:
            raise ProtocolError(f"ERROR with unknown code {code}: {message}")
        return cls(ErrorCode(code), message, request_id)


Message = Hello | Welcome | Health | HealthOk | Infer | Scores | Error
MESSAGES: dict[MsgType, type] = {cls.TYPE: cls for cls in (Hello, Welcome, Health, HealthOk, Infer, Scores, Error)}


def encode(msg: Message) -> bytes:
    """One complete frame (header + body) for a message."""
    body = msg.to_body()
    return pack_header(msg.TYPE, len(body), getattr(msg, "flags", 0)) + body


def decode_body(header: Header, body: bytes) -> Message:
    """The message a validated header and its body carry; ProtocolError when the body is malformed."""
    if len(body) != header.length:
        raise ProtocolError(f"truncated {header.type.name} body: {len(body)} of {header.length} bytes")
    flagged = bool(header.flags & FLAG_BATCH_TIMINGS)
    if header.type == MsgType.RESULT:
        return Scores.from_body(body, batch_timings=flagged)
    msg = MESSAGES[header.type].from_body(body)
    return Infer(msg.request_id, msg.model, msg.payload, batch_timings=True) if flagged else msg


def decode(frame: bytes, max_body: int = DEFAULT_MAX_FRAME) -> Message:
    """Parse one complete frame held in memory (tests, tools)."""
    header = parse_header(frame[:HEADER_SIZE], max_body)
    return decode_body(header, frame[HEADER_SIZE:])
