"""The TLS 1.3 record layer for application traffic, sans-IO, on the keys the service returned.

BaseRecordLayer is the version-neutral part, which record12.Tls12RecordLayer shares.

RFC 8446 sections 5 (records), 4.6.3 (KeyUpdate), 6 (alerts), 7.2 (traffic key
update). Bytes in (`receive_data`), events out (`next_event`); everything to
write to the peer, in order, comes from `data_to_send`. No sockets, no threads,
no handshake: post-handshake NewSessionTicket messages are dropped (there is no
resumption yet), KeyUpdate is handled here, and any other handshake message is
an unexpected_message. A protocol error queues our alert record and raises
LocalProtocolError; an alert from the peer raises PeerAlertError.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from handshaker_wire.hkdf import HASHES, hkdf_expand_label
from handshaker_wire.record import Tls13Protection

from .constants import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    HandshakeType,
    KeyUpdateRequest,
    cipher_suite_name,
)
from .errors import LocalProtocolError, PeerAlertError, TLSProtocolError
from .keys import SessionKeys, TrafficKeys

HEADER_LEN = 5
HANDSHAKE_HEADER_LEN = 4
MAX_PLAINTEXT = 2**14
# "the full encoded TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets" (section 5.4).
MAX_INNER_PLAINTEXT = MAX_PLAINTEXT + 1
# "The length MUST NOT exceed 2^14 + 256 bytes" (TLSCiphertext.length).
MAX_CIPHERTEXT = 2**14 + 256
# A NewSessionTicket carries a ticket<1..2^16-1> and extensions<0..2^16-2>.
MAX_POST_HANDSHAKE_MESSAGE = 2**18
# RFC 8446 section 5.5: AES-GCM may protect up to 2^24.5 full-size records under
# one key; rekey well before that.
KEY_UPDATE_AFTER_RECORDS = 2**23

TLS1_2 = 0x0303
TLS1_3 = 0x0304
_LEGACY_RECORD_VERSIONS = (0x0301, 0x0302, 0x0303)


@dataclass(frozen=True, slots=True)
class _Suite:
    hash_name: str
    key_len: int
    aead: type[AESGCM] | type[ChaCha20Poly1305]


_SUITES: dict[int, _Suite] = {
    CipherSuite.TLS_AES_128_GCM_SHA256: _Suite("sha256", 16, AESGCM),
    CipherSuite.TLS_AES_256_GCM_SHA384: _Suite("sha384", 32, AESGCM),
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: _Suite("sha256", 32, ChaCha20Poly1305),
}


def next_traffic_keys(cipher_suite: int, keys: TrafficKeys) -> TrafficKeys:
    """The keys after a KeyUpdate (RFC 8446 section 7.2).

    application_traffic_secret_N+1 =
        HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
    """
    suite = _suite(cipher_suite)
    secret = hkdf_expand_label(
        suite.hash_name, keys.secret, b"traffic upd", b"", HASHES[suite.hash_name][2]
    )
    return traffic_keys_from_secret(cipher_suite, secret)


def traffic_keys_from_secret(cipher_suite: int, secret: bytes) -> TrafficKeys:
    """[sender]_write_key and [sender]_write_iv of a traffic secret (RFC 8446 section 7.3)."""
    suite = _suite(cipher_suite)
    return TrafficKeys(
        secret=secret,
        key=hkdf_expand_label(suite.hash_name, secret, b"key", b"", suite.key_len),
        iv=hkdf_expand_label(suite.hash_name, secret, b"iv", b"", 12),
        sequence_number=0,
    )


def _suite(cipher_suite: int) -> _Suite:
    try:
        return _SUITES[cipher_suite]
    except KeyError:
        raise ValueError(f"not a TLS 1.3 cipher suite: {cipher_suite_name(cipher_suite)}") from None


class RecordProtection(Tls13Protection):
    """One direction's AEAD: key, IV and the sequence number of the next record (the
    cryptography is handshaker_wire.record's, which the service's engine uses too)."""

    __slots__ = ("cipher_suite", "keys")

    def __init__(self, cipher_suite: int, keys: TrafficKeys) -> None:
        suite = _suite(cipher_suite)
        if len(keys.key) != suite.key_len or len(keys.iv) != 12:
            raise ValueError("key or IV length does not match the cipher suite")
        super().__init__(suite.aead(keys.key), keys.iv, keys.sequence_number)
        self.cipher_suite = cipher_suite
        self.keys = keys

    def _error(self, alert: int, reason: str) -> Exception:
        return LocalProtocolError(alert, reason)

    def current_keys(self) -> TrafficKeys:
        return TrafficKeys(self.keys.secret, self.keys.key, self.keys.iv, self.sequence_number)

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes:
        if len(data) > MAX_PLAINTEXT:
            raise ValueError("a record carries at most 2^14 bytes")
        return super().seal(content_type, data, padding)

    def open(self, header: bytes, fragment: bytes) -> tuple[int, bytes]:
        """Decrypt one record: (inner content type, content)."""
        return self.open_fragment(header, fragment, MAX_INNER_PLAINTEXT)


# Events


@dataclass(frozen=True, slots=True)
class ApplicationData:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseNotifyReceived:
    """The peer will send nothing more (RFC 8446 section 6.1)."""


@dataclass(frozen=True, slots=True)
class KeyUpdateReceived:
    """The peer switched its write key; our read key followed it."""

    update_requested: bool


Event = ApplicationData | CloseNotifyReceived | KeyUpdateReceived


class BaseRecordLayer:
    """What the TLS 1.3 and TLS 1.2 record layers share, version-neutral: the output
    queue, fragmenting to the peer's limit, events, closing. Subclasses seal and open."""

    def __init__(
        self,
        cipher_suite: int,
        *,
        peer_record_size_limit: int = MAX_PLAINTEXT,
    ) -> None:
        self.cipher_suite = cipher_suite
        self._fragment_limit = max(1, min(MAX_PLAINTEXT, peer_record_size_limit or MAX_PLAINTEXT))
        self._in = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._handshake = bytearray()
        self._error: TLSProtocolError | None = None
        self.write_closed = False
        self.close_notify_received = False

    @property
    def read_keys(self) -> TrafficKeys:
        """The current read keys, with the sequence number of the next record."""
        raise NotImplementedError

    @property
    def write_keys(self) -> TrafficKeys:
        raise NotImplementedError

    @property
    def fragment_limit(self) -> int:
        return self._fragment_limit

    def update_keys(self, request_peer_update: bool = True) -> None:
        raise NotImplementedError

    def _seal(self, content_type: int, content: bytes) -> None:
        raise NotImplementedError

    def _before_record(self) -> None:
        """Called before every record we send (TLS 1.3: a KeyUpdate we owe goes first)."""

    def _rekey_due(self) -> bool:
        return False

    def _process_record_or_raise(self) -> bool:
        raise NotImplementedError

    # Sending

    def data_to_send(self) -> bytes:
        """Every record queued since the last call, in order; write them to the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_application_data(self, data: bytes) -> None:
        """Queue `data` as application records of at most min(2^14, the peer's limit) bytes."""
        self._check_can_send()
        view = memoryview(data)
        limit = self._fragment_limit
        for start in range(0, len(data), limit):
            self._before_record()
            if self._rekey_due():
                self.update_keys(request_peer_update=False)
            self._seal(ContentType.APPLICATION_DATA, bytes(view[start : start + limit]))

    def close(self) -> None:
        """Queue a close_notify alert; nothing may be sent after it."""
        if self.write_closed or self._error is not None:
            return
        self._queue_alert(AlertDescription.CLOSE_NOTIFY, AlertLevel.WARNING)
        self.write_closed = True

    def send_alert(self, description: int) -> None:
        """Queue a fatal alert; the connection is over."""
        if not self.write_closed:
            self._queue_alert(description, AlertLevel.FATAL)
            self.write_closed = True

    def _queue_alert(self, description: int, level: int) -> None:
        self._before_record()
        self._seal(ContentType.ALERT, bytes((level, description)))

    def _check_can_send(self) -> None:
        if self._error is not None:
            raise self._error
        if self.write_closed:
            raise TLSProtocolError(AlertDescription.CLOSE_NOTIFY, "the connection is closed")

    # Receiving

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the peer, with any split or coalescing."""
        if not self.close_notify_received and self._error is None:
            self._in += data

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        while not self._events:
            if self.close_notify_received or not self._process_record():
                return None
        return self._events.popleft()

    def events(self) -> Iterator[Event]:
        """Every event the bytes received so far produce."""
        while (event := self.next_event()) is not None:
            yield event

    def _process_record(self) -> bool:
        try:
            return self._process_record_or_raise()
        except LocalProtocolError as error:
            self._error = error
            self.send_alert(error.alert)
            raise
        except PeerAlertError as error:
            self._error = error
            raise

    def _receive_close_notify(self) -> None:
        # "Any data received after a closure alert has been received MUST be ignored."
        self.close_notify_received = True
        self._in.clear()
        self._events.append(CloseNotifyReceived())


class RecordLayer(BaseRecordLayer):
    """Both directions of a TLS 1.3 connection after its handshake."""

    def __init__(
        self,
        cipher_suite: int,
        read: TrafficKeys,
        write: TrafficKeys,
        *,
        peer_record_size_limit: int = MAX_PLAINTEXT,
        key_update_after_records: int = KEY_UPDATE_AFTER_RECORDS,
    ) -> None:
        super().__init__(cipher_suite, peer_record_size_limit=peer_record_size_limit)
        self._read = RecordProtection(cipher_suite, read)
        self._write = RecordProtection(cipher_suite, write)
        self._key_update_after = key_update_after_records
        # The peer sent update_requested after our last KeyUpdate: ours goes out before
        # the next record we send. Requests that arrive while it is owed share it: "an
        # implementation which receives multiple KeyUpdates while it is silent [responds]
        # with a single update".
        self._key_update_owed = False
        self.tickets_dropped = 0
        self.key_updates_sent = 0
        self.key_updates_received = 0

    @classmethod
    def from_session_keys(cls, keys: SessionKeys) -> RecordLayer:
        """TLS 1.3 keys only; layers.open_record_layer picks the layer for any version."""
        if keys.version != TLS1_3:
            raise ValueError(f"not TLS 1.3 keys: version 0x{keys.version:04x}")
        return cls(
            keys.cipher_suite,
            keys.read,
            keys.write,
            peer_record_size_limit=keys.peer_record_size_limit,
        )

    @property
    def read_keys(self) -> TrafficKeys:
        """The current read keys, with the sequence number of the next record."""
        return self._read.current_keys()

    @property
    def write_keys(self) -> TrafficKeys:
        return self._write.current_keys()

    def _before_record(self) -> None:
        self._send_owed_key_update()

    def _rekey_due(self) -> bool:
        return self._write.sequence_number >= self._key_update_after

    def update_keys(self, request_peer_update: bool = True) -> None:
        """Send a KeyUpdate and switch to the next write key (RFC 8446 section 4.6.3).

        With request_peer_update the peer answers with a KeyUpdate of its own,
        which updates our read key when it arrives. A KeyUpdate we owe the peer
        goes out first.
        """
        self._check_can_send()
        self._send_owed_key_update()
        self._send_key_update(request_peer_update)

    def _send_owed_key_update(self) -> None:
        """Our answer to the peer's update_requested, if one is owed (RFC 8446 section 4.6.3).

        "If the request_update field is set to "update_requested", then the
         receiver MUST send a KeyUpdate of its own with request_update set to
         "update_not_requested" prior to sending its next Application Data record."
        """
        if self._key_update_owed:
            self._key_update_owed = False
            self._send_key_update(False)

    def _send_key_update(self, request_peer_update: bool) -> None:
        request = (
            KeyUpdateRequest.UPDATE_REQUESTED
            if request_peer_update
            else KeyUpdateRequest.UPDATE_NOT_REQUESTED
        )
        # struct { KeyUpdateRequest request_update; } KeyUpdate;
        message = bytes((HandshakeType.KEY_UPDATE, 0, 0, 1, request))
        self._seal(ContentType.HANDSHAKE, message)
        # "After sending a KeyUpdate message, the sender SHALL send all its
        #  traffic using the next generation of keys."
        self._write = RecordProtection(
            self.cipher_suite, next_traffic_keys(self.cipher_suite, self._write.keys)
        )
        self.key_updates_sent += 1

    def _seal(self, content_type: int, content: bytes) -> None:
        self._out += self._write.seal(content_type, content)

    def _process_record_or_raise(self) -> bool:
        buffer = self._in
        if len(buffer) < HEADER_LEN:
            return False
        outer_type = buffer[0]
        legacy_version = int.from_bytes(buffer[1:3], "big")
        length = int.from_bytes(buffer[3:5], "big")
        if legacy_version not in _LEGACY_RECORD_VERSIONS:
            raise LocalProtocolError(AlertDescription.DECODE_ERROR, "not a TLS record")
        if length > MAX_CIPHERTEXT:
            raise LocalProtocolError(
                AlertDescription.RECORD_OVERFLOW, "record longer than 2^14 + 256 bytes"
            )
        if len(buffer) < HEADER_LEN + length:
            return False
        header = bytes(buffer[:HEADER_LEN])
        fragment = bytes(buffer[HEADER_LEN : HEADER_LEN + length])
        del buffer[: HEADER_LEN + length]
        if outer_type != ContentType.APPLICATION_DATA:
            # After the handshake every record is protected; the change_cipher_spec
            # that may be dropped is only the one before the peer's Finished.
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE,
                f"an unprotected record of type {outer_type} after the handshake",
            )
        content_type, content = self._read.open(header, fragment)
        if self._handshake and content_type != ContentType.HANDSHAKE:
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE,
                "handshake message interleaved with another record type",
            )
        if content_type == ContentType.APPLICATION_DATA:
            if content:
                self._events.append(ApplicationData(content))
        elif content_type == ContentType.ALERT:
            self._receive_alert(content)
        elif content_type == ContentType.HANDSHAKE:
            self._receive_handshake(content)
        else:
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE,
                f"a protected record of type {content_type} after the handshake",
            )
        return True

    def _receive_alert(self, content: bytes) -> None:
        # "Alert messages MUST NOT be fragmented across records, and multiple
        #  alert messages MUST NOT be coalesced into a single TLSPlaintext record."
        if len(content) != 2:
            raise LocalProtocolError(AlertDescription.DECODE_ERROR, "an alert is two bytes")
        description = content[1]
        if description == AlertDescription.CLOSE_NOTIFY:
            self._receive_close_notify()
        elif description == AlertDescription.USER_CANCELED:
            # A closure alert that the peer follows with close_notify.
            pass
        else:
            # "All the alerts listed in Section 6.2 MUST ... be treated as error
            #  alerts when received regardless of the AlertLevel in the message."
            raise PeerAlertError(description)

    def _receive_handshake(self, content: bytes) -> None:
        if not content:
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE, "a zero-length handshake fragment"
            )
        buffer = self._handshake
        buffer += content
        while len(buffer) >= HANDSHAKE_HEADER_LEN:
            msg_type = buffer[0]
            length = int.from_bytes(buffer[1:4], "big")
            if length > MAX_POST_HANDSHAKE_MESSAGE:
                raise LocalProtocolError(
                    AlertDescription.UNEXPECTED_MESSAGE, "post-handshake message too large"
                )
            if len(buffer) < HANDSHAKE_HEADER_LEN + length:
                return
            body = bytes(buffer[HANDSHAKE_HEADER_LEN : HANDSHAKE_HEADER_LEN + length])
            del buffer[: HANDSHAKE_HEADER_LEN + length]
            if msg_type == HandshakeType.NEW_SESSION_TICKET:
                # Resumption is not supported yet: the ticket is of no use.
                self.tickets_dropped += 1
            elif msg_type == HandshakeType.KEY_UPDATE:
                # "Handshake messages MUST NOT span key changes."
                if buffer:
                    raise LocalProtocolError(
                        AlertDescription.UNEXPECTED_MESSAGE,
                        "a KeyUpdate not at the end of its record",
                    )
                self._receive_key_update(body)
            else:
                raise LocalProtocolError(
                    AlertDescription.UNEXPECTED_MESSAGE,
                    f"post-handshake message of type {msg_type} is not supported",
                )

    def _receive_key_update(self, body: bytes) -> None:
        if len(body) != 1:
            raise LocalProtocolError(AlertDescription.DECODE_ERROR, "a malformed KeyUpdate")
        request = body[0]
        if request not in (
            KeyUpdateRequest.UPDATE_NOT_REQUESTED,
            KeyUpdateRequest.UPDATE_REQUESTED,
        ):
            # "If an implementation receives any other value, it MUST terminate
            #  the connection with an "illegal_parameter" alert."
            raise LocalProtocolError(
                AlertDescription.ILLEGAL_PARAMETER, f"KeyUpdate request_update {request}"
            )
        self._read = RecordProtection(
            self.cipher_suite, next_traffic_keys(self.cipher_suite, self._read.keys)
        )
        self.key_updates_received += 1
        requested = request == KeyUpdateRequest.UPDATE_REQUESTED
        # Owed, not sent: it goes out before our next record (_send_owed_key_update),
        # so a burst of requests while we are silent gets one answer.
        if requested and not self.write_closed:
            self._key_update_owed = True
        self._events.append(KeyUpdateReceived(update_requested=requested))
