"""A session's record for a shared store, as bytes: what the next replica needs to go on.

The bytes are sealed (sealing.py) before they leave the process: they hold the
engine snapshot and, once the handshake is complete, its traffic secrets. The
owner, session id and version stay outside, in the store's own fields.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any

from handshaker.tls import ConnectionState, HandshakeResult, TrafficKeys

from .base import Role

FORMAT = 1
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _keys(keys: TrafficKeys) -> dict[str, Any]:
    return {
        "secret": _b64(keys.secret),
        "key": _b64(keys.key),
        "iv": _b64(keys.iv),
        "sequence_number": keys.sequence_number,
    }


def _unkeys(entry: dict[str, Any]) -> TrafficKeys:
    return TrafficKeys(
        secret=base64.b64decode(entry["secret"]),
        key=base64.b64decode(entry["key"]),
        iv=base64.b64decode(entry["iv"]),
        sequence_number=int(entry["sequence_number"]),
    )


def _encode_result(result: HandshakeResult) -> bytes:
    # Once per handshake, at completion: JSON is plenty and reads back without a schema.
    entry = {
        "version": result.version,
        "cipher_suite": result.cipher_suite,
        "group": result.group,
        "peer_signature_scheme": result.peer_signature_scheme,
        "signature_scheme": result.signature_scheme,
        "alpn_protocol": None if result.alpn_protocol is None else _b64(result.alpn_protocol),
        "server_name": result.server_name,
        "peer_certificates": [_b64(c) for c in result.peer_certificates],
        "read": _keys(result.read),
        "write": _keys(result.write),
        "exporter_master_secret": _b64(result.exporter_master_secret),
        "resumption_master_secret": _b64(result.resumption_master_secret),
        "client_random": _b64(result.client_random),
        "hello_retry": result.hello_retry,
        "resumed": result.resumed,
        "peer_record_size_limit": result.peer_record_size_limit,
        "keylog": list(result.keylog),
    }
    return json.dumps(entry, separators=(",", ":")).encode()


def _decode_result(data: bytes) -> HandshakeResult:
    try:
        e = json.loads(data)
        return HandshakeResult(
            version=int(e["version"]),
            cipher_suite=int(e["cipher_suite"]),
            group=int(e["group"]),
            peer_signature_scheme=e["peer_signature_scheme"],
            signature_scheme=e["signature_scheme"],
            alpn_protocol=None
            if e["alpn_protocol"] is None
            else base64.b64decode(e["alpn_protocol"]),
            server_name=e["server_name"],
            peer_certificates=tuple(base64.b64decode(c) for c in e["peer_certificates"]),
            read=_unkeys(e["read"]),
            write=_unkeys(e["write"]),
            exporter_master_secret=base64.b64decode(e["exporter_master_secret"]),
            resumption_master_secret=base64.b64decode(e["resumption_master_secret"]),
            client_random=base64.b64decode(e["client_random"]),
            hello_retry=bool(e["hello_retry"]),
            resumed=bool(e["resumed"]),
            peer_record_size_limit=int(e["peer_record_size_limit"]),
            keylog=tuple(e["keylog"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise RecordError(f"session result does not parse ({type(error).__name__})") from None
