"""Wire format: round trips, and every malformed frame or body rejected with ProtocolError and the right code."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.runtime import protocol as P
from planner.runtime.protocol import ErrorCode, ProtocolError

HEALTH_INFO = {"status": "ok", "model": "vgg", "uptime_s": 1.5, "requests": 3, "errors": 0, "connections": 1,
               "workers": 2, "max_frame": 1024}

MESSAGES = [
    P.Hello("s3cret"),
    P.Hello(""),
    P.Welcome({"model": "vgg", "max_frame": 1024, "server": "planner"}),
    P.Health(),
    P.HealthOk(HEALTH_INFO),
    P.Infer(7, "resnet", b"\x00payload\xff" * 100),
    P.Error(ErrorCode.WRONG_MODEL, "not this one: é", 9),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    frame = P.encode(msg)
    assert P.parse_header(frame[:P.HEADER_SIZE], 1 << 20).length == len(frame) - P.HEADER_SIZE
    assert P.decode(frame) == msg


@pytest.mark.parametrize("shape", [(), (10,), (2, 10), (1, 2, 3, 4)])
def test_result_round_trip(shape):
    scores = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 0.5
    msg = P.decode(P.encode(P.Scores(3, scores, 0.25, 1.5, 2.5, 4.0)))
    assert msg.request_id == 3 and msg.scores.dtype == np.float32 and msg.scores.shape == shape
    np.testing.assert_array_equal(msg.scores, scores)
    assert msg.timings() == {"queue_wait_ms": 0.25, "decode_ms": 1.5, "tail_ms": 2.5, "server_ms": 4.0}


def _frame(msg_type: int, body: bytes, magic=P.MAGIC, version=P.VERSION, flags=0, length=None) -> bytes:
    return P.HEADER.pack(magic, version, msg_type, flags, len(body) if length is None else length) + body


@pytest.mark.parametrize("frame, code, words", [
    (_frame(3, b"", magic=b"HTTP"), ErrorCode.BAD_FRAME, "magic"),
    (_frame(3, b"", version=9), ErrorCode.BAD_VERSION, "version 9"),
    (_frame(99, b""), ErrorCode.UNKNOWN_TYPE, "type 99"),
    (_frame(3, b"", flags=1), ErrorCode.BAD_FRAME, "flags"),
    (_frame(5, b"", length=2048), ErrorCode.TOO_LARGE, "2048"),
    (_frame(3, b"")[:7], ErrorCode.BAD_FRAME, "truncated"),
])
def test_bad_headers(frame, code, words):
    with pytest.raises(ProtocolError, match=words) as info:
        P.decode(frame, max_body=1024)
    assert info.value.code == code


def _infer_body(model: bytes, payload: bytes, n: int | None = None) -> bytes:
    return struct.pack("!QB", 1, len(model) if n is None else n) + model + payload


def _result_body(ndim: int, dims: list[int], data: bytes, times=(0.0, 0.0, 0.0, 0.0)) -> bytes:
    return struct.pack("!QddddB", 1, *times, ndim) + b"".join(struct.pack("!I", d) for d in dims) + data


@pytest.mark.parametrize("msg_type, body, words", [
    (P.MsgType.HELLO, b"\x00", "truncated"),
    (P.MsgType.HELLO, struct.pack("!H", 300) + b"x" * 300, "exceeds"),
    (P.MsgType.HELLO, struct.pack("!H", 2) + b"\xff\xfe", "UTF-8"),
    (P.MsgType.HELLO, struct.pack("!H", 1) + b"ab", "trailing"),
    (P.MsgType.HEALTH, b"x", "trailing"),
    (P.MsgType.INFER, _infer_body(b"vgg", b"")[:5], "truncated"),
    (P.MsgType.INFER, _infer_body(b"vgg", b"", n=50), "truncated"),
    (P.MsgType.INFER, _infer_body(b"vgg", b""), "empty payload"),
    (P.MsgType.INFER, _infer_body(b"", b"data"), "model name"),
    (P.MsgType.RESULT, _result_body(5, [1] * 5, b"\0" * 4), "dims"),
    (P.MsgType.RESULT, _result_body(2, [2, 3], b"\0" * 20), "truncated"),
    (P.MsgType.RESULT, _result_body(2, [2, 3], b"\0" * 28), "trailing"),
    (P.MsgType.RESULT, _result_body(2, [1 << 31, 1 << 31], b""), "exceed"),
    (P.MsgType.RESULT, _result_body(1, [1], b"\0" * 4, times=(float("nan"), 0, 0, 0)), "finite"),
    (P.MsgType.RESULT, _result_body(1, [1], b"\0" * 4, times=(-1.0, 0, 0, 0)), "non-negative"),
    (P.MsgType.ERROR, struct.pack("!QHH", 0, 999, 2) + b"hi", "unknown code"),
    (P.MsgType.ERROR, struct.pack("!QHH", 0, 1, 5000) + b"x" * 5000, "exceeds"),
    (P.MsgType.WELCOME, b"\x80\x81", "JSON"),
    (P.MsgType.WELCOME, b"[1, 2]", "JSON object"),
    (P.MsgType.WELCOME, b'{"model": "m", "max_frame": 5}', "lacks 'server'"),
    (P.MsgType.WELCOME, b'{"model": "m", "max_frame": true, "server": "s"}', "max_frame"),
    (P.MsgType.WELCOME, b'{"model": 1, "max_frame": 5, "server": "s"}', "model"),
    (P.MsgType.HEALTH_OK, b'{"uptime_s": NaN}', "JSON"),
    (P.MsgType.HEALTH_OK, b'{"a": "' + b"x" * 5000 + b'"}', "exceeds"),
])
def test_bad_bodies(msg_type, body, words):
    with pytest.raises(ProtocolError, match=words):
        P.decode(_frame(msg_type, body))


def test_decode_body_rejects_length_mismatch():
    header = P.Header(P.MsgType.HEALTH, 0, 4)
    with pytest.raises(ProtocolError, match="truncated HEALTH body"):
        P.decode_body(header, b"ab")


def test_json_keeps_only_schema_keys():
    raw = b'{"model": "m", "max_frame": 5, "server": "s", "extra": [1, 2]}'
    assert P.decode(_frame(P.MsgType.WELCOME, raw)).info == {"model": "m", "max_frame": 5, "server": "s"}


def test_encoding_refuses_what_cannot_be_sent():
    with pytest.raises(ProtocolError, match="token"):
        P.encode(P.Hello("t" * 300))
    with pytest.raises(ProtocolError, match="model name"):
        P.encode(P.Infer(1, "m" * 300, b"x"))
    with pytest.raises(ProtocolError, match="dims"):
        P.encode(P.Scores(1, np.zeros((1,) * 5, np.float32)))
    with pytest.raises(ProtocolError, match="finite"):
        P.encode(P.Scores(1, np.zeros(3, np.float32), tail_ms=float("inf")))
    with pytest.raises(ProtocolError, match="lacks"):
        P.encode(P.HealthOk({"status": "ok"}))


def test_long_error_message_is_shortened_visibly():
    msg = P.decode(P.encode(P.Error(ErrorCode.INTERNAL, "é" * 2000)))
    assert len(msg.message.encode()) <= P.MAX_ERROR_BYTES and msg.message.endswith("...")


@settings(max_examples=300, deadline=None)
@given(msg_type=st.sampled_from(list(P.MsgType)), body=st.binary(max_size=200))
def test_random_bodies_raise_only_protocol_error(msg_type, body):
    try:
        P.decode(_frame(msg_type, body))
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=64))
def test_random_frames_raise_only_protocol_error(frame):
    try:
        P.decode(frame, max_body=32)
    except ProtocolError:
        pass


def test_infer_frame_size_is_the_encoded_length():
    for msg in (P.Infer(1, "m", b"x"), P.Infer(2**40, "modèle", b"\0" * 1000)):
        assert msg.frame_size == len(P.encode(msg))
