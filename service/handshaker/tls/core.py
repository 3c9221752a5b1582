"""The sans-IO connection core: records in, handshake messages to the current state, records out.

This module owns the byte plumbing shared by both roles: record framing and
protection, handshake message reassembly, CCS and alert handling, the event
queue, and the one place where an AlertError becomes a queued alert record and
a HandshakeFailed event. What a message means lives in the state classes
(tls13/client.py, tls13/server.py); nothing here knows a message's content.
It never raises past its API except StateError, for a caller's misuse.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from .codepoints import AlertDescription, AlertLevel, ContentType, HandshakeType
from .errors import (
    AlertError,
    DecodeError,
    PeerAlert,
    RecordOverflow,
    UnexpectedMessage,
)
from .events import (
    NEED_DATA,
    Event,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    NeedData,
)
from .framing import RecordReader, plaintext_records
from .key_schedule import CipherSuiteParams, TrafficSecret
from .keyops import AwaitPrivateKeyOperation, PrivateKeyOperation
from .record import MAX_PLAINTEXT, Protection, RecordProtection
from .signer import SignerError

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_ALERT = ContentType.ALERT
_APPLICATION_DATA = ContentType.APPLICATION_DATA
_CHANGE_CIPHER_SPEC = ContentType.CHANGE_CIPHER_SPEC
_CLOSE_NOTIFY = AlertDescription.CLOSE_NOTIFY
_FATAL = AlertLevel.FATAL
_FINISHED = HandshakeType.FINISHED
_HANDSHAKE = ContentType.HANDSHAKE
_INTERNAL_ERROR = AlertDescription.INTERNAL_ERROR
_USER_CANCELED = AlertDescription.USER_CANCELED
_WARNING = AlertLevel.WARNING

Random = Callable[[int], bytes]
Clock = Callable[[], float]

# The largest handshake message we reassemble; certificate chains are the big ones.
MAX_HANDSHAKE_MESSAGE = 2**17
# Up to this many bytes of rejected 0-RTT data are skipped (RFC 8446 section 4.2.10).
MAX_SKIPPED_EARLY_DATA = 2**16
# Bounds on what a peer may make one handshake process. RFC 8446 appendix D.4 lets a peer
# send one dummy change_cipher_spec; one more is leniency, not a use.
MAX_DUMMY_CHANGE_CIPHER_SPECS = 2
# Handshake records carrying fewer than TINY_RECORD bytes: a real peer sends a few (a lone
# ServerHelloDone is 4 bytes); thousands are a peer making us work per byte.
TINY_RECORD = 16
MAX_TINY_RECORDS = 32


class ConnectionState(enum.Enum):
    HANDSHAKING = "HANDSHAKING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


# As module constants, like the enum members above.
_HANDSHAKING = ConnectionState.HANDSHAKING
_COMPLETE = ConnectionState.COMPLETE
_FAILED = ConnectionState.FAILED


class StateError(Exception):
    """The caller used the connection in a way its state does not allow."""


class HandshakeState(Protocol):
    """One step of a role's state machine: takes a message, returns the next step."""

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState: ...


class ExpectsChangeCipherSpec:
    """A state that waits for a change_cipher_spec as a real step (TLS 1.2, RFC 5246 section
    7.1), not the dummy TLS 1.3 drops: the core hands it the CCS record instead of a message."""

    def handle_change_cipher_spec(self, conn: Connection) -> HandshakeState:
        raise NotImplementedError

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        raise UnexpectedMessage("handshake message where change_cipher_spec was due")


class Connection:
    """Shared machinery of ClientConnection and ServerConnection."""

    def __init__(self, random: Random, clock: Clock) -> None:
        self.random = random
        self.clock = clock
        self.status = _HANDSHAKING
        self._reader = RecordReader()
        self._out = bytearray()
        self._pending_handshake = bytearray()
        # Handshake bytes of a message not yet whole (or held while a key operation is out).
        self._handshake_buffer = b""
        self._events: deque[Event] = deque()
        self._read: Protection | None = None
        self._write: Protection | None = None
        self._read_epoch = 0
        # Largest inner plaintext we send per protected record (peer's record_size_limit - 1).
        self.write_fragment_limit = MAX_PLAINTEXT
        # Largest inner plaintext we accept (our record_size_limit - 1, once the peer agreed).
        self.read_fragment_limit = MAX_PLAINTEXT
        self.ccs_allowed = False
        self.skip_early_data = 0
        # How many dummy change_cipher_spec and tiny handshake records the peer sent.
        self.dummy_change_cipher_specs = 0
        self.tiny_records = 0
        self._unconsumed = b""
        self._state: HandshakeState
        # The read epoch when the state now waiting for a private-key operation took
        # its message: the "no data across a key change" rule is checked on resume.
        self._operation_epoch = 0

    # --- public API --------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.status

    def receive_data(self, data: bytes) -> None:
        """Take bytes received from the peer; any split or coalescing of records is fine.

        While a private-key operation is out, the bytes are held and processed
        once it completes.
        """
        if self.status is not _HANDSHAKING:
            raise StateError(f"connection is {self.status.value}; it takes no more handshake bytes")
        self._reader.feed(data)
        if self.pending_operation is None:
            self._guarded(self._process_records)

    @property
    def buffered_bytes(self) -> int:
        """The peer's bytes held, not yet acted on: partial records and an unfinished message
        (what a caller bounds to cap the memory one handshake can make it hold)."""
        return self._reader.pending_length() + len(self._handshake_buffer)

    @property
    def pending_operation(self) -> PrivateKeyOperation | None:
        """The private-key operation the handshake waits for, if any (see keyops.py)."""
        state = self._state
        if isinstance(state, AwaitPrivateKeyOperation) and self.status is _HANDSHAKING:
            return state.operation
        return None

    def complete_private_key_operation(self, result: bytes) -> None:
        """Resume the handshake with the signature (or plaintext) the operation produced."""
        state = self._state
        if self.status is not _HANDSHAKING or not isinstance(state, AwaitPrivateKeyOperation):
            raise StateError("no private-key operation is pending")

        def resume() -> None:
            self._state = state.resume(self, result)
            self._after_message(self._operation_epoch, more=bool(self._handshake_buffer))
            if self.status is _HANDSHAKING and self.pending_operation is None:
                self._process_handshake_messages()
                self._process_records()

        self._guarded(resume)

    def fail_private_key_operation(self, reason: str) -> None:
        """End the handshake because the operation failed; `reason` names the backend."""
        if self.status is not _HANDSHAKING or self.pending_operation is None:
            raise StateError("no private-key operation is pending")
        self._fail(_INTERNAL_ERROR, reason)

    def next_event(self) -> Event | NeedData:
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> Iterator[Event]:
        while self._events:
            yield self._events.popleft()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def take_unconsumed(self) -> bytes:
        """After the handshake: bytes fed that belong to the application-data stream."""
        rest = self._unconsumed
        self._unconsumed = b""
        return rest

    def abort(self, alert: int = AlertDescription.USER_CANCELED, reason: str = "aborted") -> None:
        """End a handshake in progress, queueing `alert` for the peer."""
        if self.status is _HANDSHAKING:
            self._fail(alert, reason)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run a step of the handshake; any failure becomes a queued alert, never an exception."""
        try:
            step()
            if self.pending_operation is None:
                # While an operation is out, the protected part of the flight waits
                # for it, so the records are those an inline signer gives.
                self._flush_handshake()
        except AlertError as error:
            self._fail(error.description, error.reason)
        except PeerAlert as alert:
            self._peer_failed(alert.description)
        except SignerError as failure:
            self._fail(_INTERNAL_ERROR, f"the keystore could not sign: {failure}")
        except Exception as bug:  # a bug must still end the handshake cleanly
            self._fail(_INTERNAL_ERROR, f"internal error ({type(bug).__name__})")
        if self.status is _COMPLETE:
            self._unconsumed = self._reader.take_pending()

    def _process_records(self) -> None:
        # pending_operation inlined: this loop runs once per record.
        while self.status is _HANDSHAKING and not isinstance(self._state, AwaitPrivateKeyOperation):
            record = self._reader.next_record()
            if record is None:
                return
            self._process_record(record[0], record[1])

    # --- for the states -----------------------------------------------------------

    def send_handshake(self, message: bytes) -> None:
        """Queue a handshake message in the current write epoch."""
        self._pending_handshake += message

    def send_change_cipher_spec(self) -> None:
        self._flush_handshake()
        self._out += b"\x14\x03\x03\x00\x01\x01"

    def set_write_keys(self, params: CipherSuiteParams, secret: TrafficSecret) -> None:
        self._flush_handshake()
        self._write = RecordProtection(params, secret.key, secret.iv)

    def set_read_keys(self, params: CipherSuiteParams, secret: TrafficSecret) -> None:
        self._read = RecordProtection(params, secret.key, secret.iv)
        self._read_epoch += 1

    def set_write_protection(self, protection: Protection) -> None:
        """Protect what is queued from here on (TLS 1.2: after our change_cipher_spec)."""
        self._flush_handshake()
        self._write = protection

    def set_read_protection(self, protection: Protection) -> None:
        """Open the peer's records from here on (TLS 1.2: after its change_cipher_spec)."""
        self._read = protection
        self._read_epoch += 1

    def complete(self, result: HandshakeResult) -> None:
        self._flush_handshake()
        self.status = _COMPLETE
        self._events.append(HandshakeComplete(result))

    # --- internals ----------------------------------------------------------------

    def _flush_handshake(self) -> None:
        if not self._pending_handshake:
            return
        data = bytes(self._pending_handshake)
        self._pending_handshake.clear()
        if self._write is None:
            self._out += plaintext_records(_HANDSHAKE, data)
        else:
            self._out += self._write.seal_fragments(_HANDSHAKE, data, self.write_fragment_limit)

    def _process_record(self, content_type: int, record: bytes) -> None:
        if content_type == _CHANGE_CIPHER_SPEC:
            self._receive_change_cipher_spec(record)
            return
        opened = self._open_record(content_type, record)
        if opened is None:
            return
        content_type, payload = opened
        if content_type == _ALERT:
            self._receive_alert(payload)
        elif content_type == _HANDSHAKE:
            self._receive_handshake_fragment(payload)
        else:
            raise UnexpectedMessage(f"unexpected content type {content_type}")

    def _receive_change_cipher_spec(self, record: bytes) -> None:
        # RFC 8446 section 5: an unprotected change_cipher_spec of the single byte 0x01,
        # between the first ClientHello and the peer's Finished, "MUST simply" be dropped.
        if len(record) != 6 or record[5] != 1:
            raise UnexpectedMessage("malformed change_cipher_spec record")
        state = self._state
        if isinstance(state, ExpectsChangeCipherSpec):
            # TLS 1.2: a real step of the handshake, and "a message boundary" like any
            # other record type change (RFC 5246 section 6.2.1 lets no handshake
            # message straddle it).
            if self._handshake_buffer:
                raise UnexpectedMessage("change_cipher_spec inside a handshake message")
            self._state = state.handle_change_cipher_spec(self)
            return
        if not self.ccs_allowed:
            raise UnexpectedMessage("change_cipher_spec before the first ClientHello")
        if self._handshake_buffer:
            # Section 5.1: "if a handshake message is split over two or more records,
            # there MUST NOT be any other records between them."
            raise UnexpectedMessage("change_cipher_spec inside a fragmented handshake message")
        self.dummy_change_cipher_specs += 1
        if self.dummy_change_cipher_specs > MAX_DUMMY_CHANGE_CIPHER_SPECS:
            raise UnexpectedMessage("too many change_cipher_spec records")

    def _open_record(self, content_type: int, record: bytes) -> tuple[int, bytes] | None:
        """The record's real content type and payload (opened when the read epoch is
        protected), checked against this point of the handshake; None: skipped."""
        if self._read is not None and not self._read.hides_content_type:
            # TLS 1.2 (RFC 5246 section 6.2.3.3): after the peer's change_cipher_spec every
            # record is protected, its real content type in the header.
            content_type, payload = self._read.open(record)
            if len(payload) > self.read_fragment_limit:
                raise RecordOverflow("record larger than our record_size_limit")
            if content_type == _APPLICATION_DATA:
                raise UnexpectedMessage("application data before the handshake finished")
        elif content_type == _APPLICATION_DATA and self._read is not None:
            if self.skip_early_data:
                opened = self._try_open_skipping_early_data(record)
                if opened is None:
                    return None
                content_type, payload = opened
            else:
                content_type, payload = self._read.open(record, self.read_fragment_limit + 1)
            if len(payload) > self.read_fragment_limit:
                raise RecordOverflow("record larger than our record_size_limit")
            if content_type == _CHANGE_CIPHER_SPEC:
                raise UnexpectedMessage("protected change_cipher_spec")
            if content_type == _APPLICATION_DATA:
                raise UnexpectedMessage("application data before the handshake finished")
        else:
            payload = record[5:]
            if content_type == _APPLICATION_DATA and self.skip_early_data > 0:
                # 0-RTT data after our HelloRetryRequest: skipped, as section 4.2.10 says.
                self.skip_early_data -= len(payload)
                return None
            if len(payload) > MAX_PLAINTEXT:
                raise RecordOverflow("plaintext record longer than 2^14 bytes")
            if content_type == _APPLICATION_DATA:
                raise UnexpectedMessage("application data before the handshake keys")
            if content_type == _HANDSHAKE and self._read is not None:
                raise UnexpectedMessage("unprotected handshake record after the key change")
        return content_type, payload

    def _receive_handshake_fragment(self, payload: bytes) -> None:
        if not payload:
            raise UnexpectedMessage("zero-length handshake fragment")
        if len(payload) < TINY_RECORD:
            self.tiny_records += 1
            if self.tiny_records > MAX_TINY_RECORDS:
                raise UnexpectedMessage("too many tiny handshake records")
        buffered = self._handshake_buffer
        self._handshake_buffer = buffered + payload if buffered else payload
        self._process_handshake_messages()

    def _try_open_skipping_early_data(self, record: bytes) -> tuple[int, bytes] | None:
        assert self._read is not None
        sequence = self._read.sequence_number
        try:
            opened = self._read.open(record)
        except AlertError:
            # Rejected 0-RTT data fails to decrypt with the handshake key: drop it.
            self._read.sequence_number = sequence
            self.skip_early_data -= len(record)
            if self.skip_early_data <= 0:
                raise
            return None
        self.skip_early_data = 0
        return opened

    def _receive_alert(self, payload: bytes) -> None:
        # RFC 8446 section 5.1: "a record with an Alert type MUST contain exactly one
        # message". No message at all is an empty fragment, refused like an empty
        # Handshake fragment (unexpected_message); a message of 1 or 3+ bytes is one
        # of the wrong length (section 6: decode_error).
        if not payload:
            raise UnexpectedMessage("zero-length alert fragment")
        if len(payload) != 2:
            raise DecodeError("alert record is not two bytes")
        raise PeerAlert(payload[1])

    def _process_handshake_messages(self) -> None:
        # Messages are sliced out of one immutable buffer by offset: no per-message
        # copy of what follows them.
        data = self._handshake_buffer
        size = len(data)
        pos = 0
        try:
            while size - pos >= 4 and self.status is _HANDSHAKING:
                length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
                if length > MAX_HANDSHAKE_MESSAGE:
                    raise DecodeError("handshake message too large")
                end = pos + 4 + length
                if end > size:
                    return
                message = data if pos == 0 and end == size else data[pos:end]
                pos = end
                more = pos < size
                if more and message[0] == _FINISHED:
                    # A key change follows every Finished during the handshake, and RFC 8446
                    # section 5.1 says "Handshake messages MUST NOT span key changes": refuse
                    # before acting on the Finished, so no completion is ever reported.
                    raise UnexpectedMessage("handshake data after Finished in the same record")
                epoch = self._read_epoch
                self._state = self._state.handle(self, message[0], message)
                if isinstance(self._state, AwaitPrivateKeyOperation):
                    self._operation_epoch = epoch
                    return
                self._after_message(epoch, more=more)
        finally:
            self._handshake_buffer = data[pos:] if pos else data

    def _after_message(self, epoch: int, *, more: bool) -> None:
        if more and self._read_epoch != epoch:
            raise UnexpectedMessage("handshake data after a key change in the same record")

    def _alert_record(self, level: int, description: int) -> None:
        self._flush_handshake()
        body = bytes((level, description))
        if self._write is None:
            self._out += plaintext_records(_ALERT, body)
        else:
            self._out += self._write.seal(_ALERT, body)

    def _fail(self, description: int, reason: str) -> None:
        self._pending_handshake.clear()
        try:
            level = _WARNING if description in (_CLOSE_NOTIFY, _USER_CANCELED) else _FATAL
            self._alert_record(level, description)
        except Exception:  # no keys usable: the alert cannot be protected
            self._out += plaintext_records(_ALERT, bytes((2, description)))
        self.status = _FAILED
        self._handshake_buffer = b""
        self._events.append(HandshakeFailed(description, reason, sent_by_peer=False))

    def _peer_failed(self, description: int) -> None:
        self._pending_handshake.clear()
        self.status = _FAILED
        self._handshake_buffer = b""
        try:
            name = AlertDescription(description).name.lower()
        except ValueError:
            name = f"alert {description}"
        self._events.append(HandshakeFailed(description, f"peer sent {name}", sent_by_peer=True))
