"""A session's record for a shared store, as bytes: what the next replica needs to go on.

The bytes are sealed (sealing.py) before they leave the process: they hold the
engine snapshot and, once the handshake is complete, its traffic secrets. The
owner, session id and version stay outside, in the store's own fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from handshaker.tls import ConnectionState, HandshakeResult, TrafficKeys

from .base import Role

# 2: the result packed (and with TLS 1.2's master secret and server random); 1 was JSON.
FORMAT = 2
_HEAD = struct.Struct(">BBBBdIII")
_ROLES = (Role.CLIENT, Role.SERVER)
_STATES = (ConnectionState.HANDSHAKING, ConnectionState.COMPLETE, ConnectionState.FAILED)


class RecordError(ValueError):
    """The record's bytes do not parse."""


@dataclass(frozen=True, slots=True)
class Record:
    role: Role
    keys_in_response: bool
    state: ConnectionState
    # time.time() at the start, so another replica can time the handshake.
    started_wall: float
    options: bytes
    snapshot: bytes
    result: HandshakeResult | None

    def encode(self) -> bytes:
        result = b"" if self.result is None else _encode_result(self.result)
        return (
            _HEAD.pack(
                FORMAT,
                _ROLES.index(self.role),
                self.keys_in_response,
                _STATES.index(self.state),
                self.started_wall,
                len(self.options),
                len(self.snapshot),
                len(result),
            )
            + self.options
            + self.snapshot
            + result
        )

    @classmethod
    def decode(cls, data: bytes) -> Record:
        try:
            fmt, role, keys, state, started, n_opt, n_snap, n_res = _HEAD.unpack_from(data)
        except struct.error:
            raise RecordError("session record is truncated") from None
        if fmt != FORMAT or role >= len(_ROLES) or state >= len(_STATES):
            raise RecordError("session record has an unknown format")
        at = _HEAD.size
        if len(data) != at + n_opt + n_snap + n_res:
            raise RecordError("session record has the wrong length")
        options = data[at : at + n_opt]
        snapshot = data[at + n_opt : at + n_opt + n_snap]
        result = _decode_result(data[at + n_opt + n_snap :]) if n_res else None
        return cls(_ROLES[role], bool(keys), _STATES[state], started, options, snapshot, result)


# The result's fixed-size fields; a signature scheme of -1 is None. Flags: hello_retry,
# resumed, extended_master_secret, ALPN present, server name present.
_RESULT = struct.Struct(">HHHiiBIQQHH")
_HELLO_RETRY, _RESUMED, _EMS, _HAS_ALPN, _HAS_NAME = 1, 2, 4, 8, 16
# The result's byte strings, each after a 4-byte length, in this order, then the
# peer's certificates and the key-log lines (their counts are in _RESULT).
_RESULT_BYTES = 13
_LENGTH = struct.Struct(">I")


def _encode_result(result: HandshakeResult) -> bytes:
    # At completion, once per handshake and on the hot path of a shared store: fixed
    # fields packed, byte strings length-prefixed, nothing re-encoded as text.
    read, write = result.read, result.write
    flags = (
        (_HELLO_RETRY if result.hello_retry else 0)
        | (_RESUMED if result.resumed else 0)
        | (_EMS if result.extended_master_secret else 0)
        | (_HAS_ALPN if result.alpn_protocol is not None else 0)
        | (_HAS_NAME if result.server_name is not None else 0)
    )
    items = [
        result.alpn_protocol or b"",
        (result.server_name or "").encode(),
        read.secret,
        read.key,
        read.iv,
        write.secret,
        write.key,
        write.iv,
        result.exporter_master_secret,
        result.resumption_master_secret,
        result.client_random,
        result.master_secret,
        result.server_random,
        *result.peer_certificates,
        *(line.encode() for line in result.keylog),
    ]
    pack = _LENGTH.pack
    return _RESULT.pack(
        result.version,
        result.cipher_suite,
        result.group,
        -1 if result.peer_signature_scheme is None else result.peer_signature_scheme,
        -1 if result.signature_scheme is None else result.signature_scheme,
        flags,
        result.peer_record_size_limit,
        read.sequence_number,
        write.sequence_number,
        len(result.peer_certificates),
        len(result.keylog),
    ) + b"".join(pack(len(item)) + item for item in items)


def _decode_result(data: bytes) -> HandshakeResult:
    try:
        (version, suite, group, peer_scheme, scheme, flags, limit, read_seq, write_seq,
         n_certs, n_lines) = _RESULT.unpack_from(data)  # fmt: skip
        items: list[bytes] = []
        at = _RESULT.size
        for _ in range(_RESULT_BYTES + n_certs + n_lines):
            (length,) = _LENGTH.unpack_from(data, at)
            at += _LENGTH.size
            if at + length > len(data):
                raise RecordError("session result is truncated")
            items.append(data[at : at + length])
            at += length
        if at != len(data):
            raise RecordError("session result has trailing bytes")
        (alpn, name, r_secret, r_key, r_iv, w_secret, w_key, w_iv, exporter, resumption,
         client_random, master, server_random) = items[:_RESULT_BYTES]  # fmt: skip
        return HandshakeResult(
            version=version,
            cipher_suite=suite,
            group=group,
            peer_signature_scheme=None if peer_scheme < 0 else peer_scheme,
            signature_scheme=None if scheme < 0 else scheme,
            alpn_protocol=alpn if flags & _HAS_ALPN else None,
            server_name=name.decode() if flags & _HAS_NAME else None,
            peer_certificates=tuple(items[_RESULT_BYTES : _RESULT_BYTES + n_certs]),
            read=TrafficKeys(r_secret, r_key, r_iv, read_seq),
            write=TrafficKeys(w_secret, w_key, w_iv, write_seq),
            exporter_master_secret=exporter,
            resumption_master_secret=resumption,
            client_random=client_random,
            hello_retry=bool(flags & _HELLO_RETRY),
            resumed=bool(flags & _RESUMED),
            peer_record_size_limit=limit,
            keylog=tuple(line.decode() for line in items[_RESULT_BYTES + n_certs :]),
            master_secret=master,
            server_random=server_random,
            extended_master_secret=bool(flags & _EMS),
        )
    except (struct.error, UnicodeDecodeError):
        raise RecordError("session result does not parse") from None
