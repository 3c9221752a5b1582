"""Which record layer a completed handshake's keys need: TLS 1.3 or TLS 1.2."""

from __future__ import annotations

from .keys import SessionKeys
from .record import TLS1_2, TLS1_3, BaseRecordLayer, RecordLayer
from .record12 import Tls12RecordLayer


def open_record_layer(keys: SessionKeys) -> BaseRecordLayer:
    """The record layer for the negotiated version, on the keys the service returned."""
    if keys.version == TLS1_2:
        return Tls12RecordLayer(
            keys.cipher_suite,
            keys.read,
            keys.write,
            peer_record_size_limit=keys.peer_record_size_limit,
        )
    if keys.version == TLS1_3:
        return RecordLayer.from_session_keys(keys)
    raise ValueError(f"no record layer for version 0x{keys.version:04x}")
