from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientAuth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLIENT_AUTH_UNSPECIFIED: _ClassVar[ClientAuth]
    CLIENT_AUTH_NONE: _ClassVar[ClientAuth]
    CLIENT_AUTH_OPTIONAL: _ClassVar[ClientAuth]
    CLIENT_AUTH_REQUIRED: _ClassVar[ClientAuth]

class HandshakeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HANDSHAKE_STATE_UNSPECIFIED: _ClassVar[HandshakeState]
    HANDSHAKE_STATE_NEED_INPUT: _ClassVar[HandshakeState]
    HANDSHAKE_STATE_COMPLETE: _ClassVar[HandshakeState]
    HANDSHAKE_STATE_FAILED: _ClassVar[HandshakeState]
CLIENT_AUTH_UNSPECIFIED: ClientAuth
CLIENT_AUTH_NONE: ClientAuth
CLIENT_AUTH_OPTIONAL: ClientAuth
CLIENT_AUTH_REQUIRED: ClientAuth
HANDSHAKE_STATE_UNSPECIFIED: HandshakeState
HANDSHAKE_STATE_NEED_INPUT: HandshakeState
HANDSHAKE_STATE_COMPLETE: HandshakeState
HANDSHAKE_STATE_FAILED: HandshakeState

class ClientOptions(_message.Message):
    __slots__ = ("server_name", "alpn_protocols", "trust_bundle", "trust_anchors_pem", "credential", "cipher_suites", "groups", "key_share_groups", "signature_schemes", "insecure_skip_verify", "skip_hostname_check", "keylog", "min_version", "max_version", "allow_legacy_master_secret", "expected_ip_address")
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    ALPN_PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    TRUST_ANCHORS_PEM_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    CIPHER_SUITES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    KEY_SHARE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEMES_FIELD_NUMBER: _ClassVar[int]
    INSECURE_SKIP_VERIFY_FIELD_NUMBER: _ClassVar[int]
    SKIP_HOSTNAME_CHECK_FIELD_NUMBER: _ClassVar[int]
    KEYLOG_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LEGACY_MASTER_SECRET_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    server_name: str
    alpn_protocols: _containers.RepeatedScalarFieldContainer[str]
    trust_bundle: str
    trust_anchors_pem: str
    credential: str
    cipher_suites: _containers.RepeatedScalarFieldContainer[int]
    groups: _containers.RepeatedScalarFieldContainer[int]
    key_share_groups: _containers.RepeatedScalarFieldContainer[int]
    signature_schemes: _containers.RepeatedScalarFieldContainer[int]
    insecure_skip_verify: bool
    skip_hostname_check: bool
    keylog: bool
    min_version: int
    max_version: int
    allow_legacy_master_secret: bool
    expected_ip_address: str
    def __init__(self, server_name: _Optional[str] = ..., alpn_protocols: _Optional[_Iterable[str]] = ..., trust_bundle: _Optional[str] = ..., trust_anchors_pem: _Optional[str] = ..., credential: _Optional[str] = ..., cipher_suites: _Optional[_Iterable[int]] = ..., groups: _Optional[_Iterable[int]] = ..., key_share_groups: _Optional[_Iterable[int]] = ..., signature_schemes: _Optional[_Iterable[int]] = ..., insecure_skip_verify: _Optional[bool] = ..., skip_hostname_check: _Optional[bool] = ..., keylog: _Optional[bool] = ..., min_version: _Optional[int] = ..., max_version: _Optional[int] = ..., allow_legacy_master_secret: _Optional[bool] = ..., expected_ip_address: _Optional[str] = ...) -> None: ...

class ServerOptions(_message.Message):
    __slots__ = ("credential", "alpn_protocols", "client_auth", "client_trust_bundle", "client_trust_anchors_pem", "cipher_suites", "groups", "signature_schemes", "keylog", "min_version", "max_version", "allow_legacy_master_secret")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ALPN_PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_AUTH_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TRUST_ANCHORS_PEM_FIELD_NUMBER: _ClassVar[int]
    CIPHER_SUITES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEMES_FIELD_NUMBER: _ClassVar[int]
    KEYLOG_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LEGACY_MASTER_SECRET_FIELD_NUMBER: _ClassVar[int]
    credential: str
    alpn_protocols: _containers.RepeatedScalarFieldContainer[str]
    client_auth: ClientAuth
    client_trust_bundle: str
    client_trust_anchors_pem: str
    cipher_suites: _containers.RepeatedScalarFieldContainer[int]
    groups: _containers.RepeatedScalarFieldContainer[int]
    signature_schemes: _containers.RepeatedScalarFieldContainer[int]
    keylog: bool
    min_version: int
    max_version: int
    allow_legacy_master_secret: bool
    def __init__(self, credential: _Optional[str] = ..., alpn_protocols: _Optional[_Iterable[str]] = ..., client_auth: _Optional[_Union[ClientAuth, str]] = ..., client_trust_bundle: _Optional[str] = ..., client_trust_anchors_pem: _Optional[str] = ..., cipher_suites: _Optional[_Iterable[int]] = ..., groups: _Optional[_Iterable[int]] = ..., signature_schemes: _Optional[_Iterable[int]] = ..., keylog: _Optional[bool] = ..., min_version: _Optional[int] = ..., max_version: _Optional[int] = ..., allow_legacy_master_secret: _Optional[bool] = ...) -> None: ...

class StartClientRequest(_message.Message):
    __slots__ = ("options", "keys_in_response")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    KEYS_IN_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    options: ClientOptions
    keys_in_response: bool
    def __init__(self, options: _Optional[_Union[ClientOptions, _Mapping]] = ..., keys_in_response: _Optional[bool] = ...) -> None: ...

class StartClientResponse(_message.Message):
    __slots__ = ("step", "keys")
    STEP_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    step: HandshakeStep
    keys: SessionKeys
    def __init__(self, step: _Optional[_Union[HandshakeStep, _Mapping]] = ..., keys: _Optional[_Union[SessionKeys, _Mapping]] = ...) -> None: ...

class StartServerRequest(_message.Message):
    __slots__ = ("options", "in_bytes", "keys_in_response")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEYS_IN_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    options: ServerOptions
    in_bytes: bytes
    keys_in_response: bool
    def __init__(self, options: _Optional[_Union[ServerOptions, _Mapping]] = ..., in_bytes: _Optional[bytes] = ..., keys_in_response: _Optional[bool] = ...) -> None: ...

class StartServerResponse(_message.Message):
    __slots__ = ("step", "keys")
    STEP_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    step: HandshakeStep
    keys: SessionKeys
    def __init__(self, step: _Optional[_Union[HandshakeStep, _Mapping]] = ..., keys: _Optional[_Union[SessionKeys, _Mapping]] = ...) -> None: ...

class FeedRequest(_message.Message):
    __slots__ = ("session_id", "in_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    in_bytes: bytes
    def __init__(self, session_id: _Optional[str] = ..., in_bytes: _Optional[bytes] = ...) -> None: ...

class FeedResponse(_message.Message):
    __slots__ = ("step", "keys")
    STEP_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    step: HandshakeStep
    keys: SessionKeys
    def __init__(self, step: _Optional[_Union[HandshakeStep, _Mapping]] = ..., keys: _Optional[_Union[SessionKeys, _Mapping]] = ...) -> None: ...

class GetKeysRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: SessionKeys
    def __init__(self, keys: _Optional[_Union[SessionKeys, _Mapping]] = ...) -> None: ...

class ExportKeyingMaterialRequest(_message.Message):
    __slots__ = ("session_id", "label", "context", "no_context", "length")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NO_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    label: bytes
    context: bytes
    no_context: bool
    length: int
    def __init__(self, session_id: _Optional[str] = ..., label: _Optional[bytes] = ..., context: _Optional[bytes] = ..., no_context: _Optional[bool] = ..., length: _Optional[int] = ...) -> None: ...

class ExportKeyingMaterialResponse(_message.Message):
    __slots__ = ("keying_material",)
    KEYING_MATERIAL_FIELD_NUMBER: _ClassVar[int]
    keying_material: bytes
    def __init__(self, keying_material: _Optional[bytes] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HandshakeRequest(_message.Message):
    __slots__ = ("client", "server", "in_bytes", "peer_address")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    client: ClientOptions
    server: ServerOptions
    in_bytes: bytes
    peer_address: str
    def __init__(self, client: _Optional[_Union[ClientOptions, _Mapping]] = ..., server: _Optional[_Union[ServerOptions, _Mapping]] = ..., in_bytes: _Optional[bytes] = ..., peer_address: _Optional[str] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ("step", "keys")
    STEP_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    step: HandshakeStep
    keys: SessionKeys
    def __init__(self, step: _Optional[_Union[HandshakeStep, _Mapping]] = ..., keys: _Optional[_Union[SessionKeys, _Mapping]] = ...) -> None: ...

class MultiplexRequest(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[ConnectionFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[ConnectionFrame, _Mapping]]] = ...) -> None: ...

class ConnectionFrame(_message.Message):
    __slots__ = ("connection_id", "request", "abort")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    connection_id: int
    request: HandshakeRequest
    abort: bool
    def __init__(self, connection_id: _Optional[int] = ..., request: _Optional[_Union[HandshakeRequest, _Mapping]] = ..., abort: _Optional[bool] = ...) -> None: ...

class MultiplexResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ConnectionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ConnectionResult, _Mapping]]] = ...) -> None: ...

class ConnectionResult(_message.Message):
    __slots__ = ("connection_id", "response", "error")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    connection_id: int
    response: HandshakeResponse
    error: FrameError
    def __init__(self, connection_id: _Optional[int] = ..., response: _Optional[_Union[HandshakeResponse, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class HandshakeStep(_message.Message):
    __slots__ = ("session_id", "out_bytes", "bytes_consumed", "state", "failure", "result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    BYTES_CONSUMED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    out_bytes: bytes
    bytes_consumed: int
    state: HandshakeState
    failure: HandshakeFailure
    result: HandshakeSummary
    def __init__(self, session_id: _Optional[str] = ..., out_bytes: _Optional[bytes] = ..., bytes_consumed: _Optional[int] = ..., state: _Optional[_Union[HandshakeState, str]] = ..., failure: _Optional[_Union[HandshakeFailure, _Mapping]] = ..., result: _Optional[_Union[HandshakeSummary, _Mapping]] = ...) -> None: ...

class HandshakeFailure(_message.Message):
    __slots__ = ("alert", "reason", "sent_by_peer")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SENT_BY_PEER_FIELD_NUMBER: _ClassVar[int]
    alert: int
    reason: str
    sent_by_peer: bool
    def __init__(self, alert: _Optional[int] = ..., reason: _Optional[str] = ..., sent_by_peer: _Optional[bool] = ...) -> None: ...

class HandshakeSummary(_message.Message):
    __slots__ = ("version", "cipher_suite", "group", "alpn_protocol", "server_name", "resumed", "hello_retry", "signature_scheme", "peer_signature_scheme", "peer")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_SUITE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ALPN_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    HELLO_RETRY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    PEER_SIGNATURE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    version: int
    cipher_suite: int
    group: int
    alpn_protocol: str
    server_name: str
    resumed: bool
    hello_retry: bool
    signature_scheme: int
    peer_signature_scheme: int
    peer: PeerIdentity
    def __init__(self, version: _Optional[int] = ..., cipher_suite: _Optional[int] = ..., group: _Optional[int] = ..., alpn_protocol: _Optional[str] = ..., server_name: _Optional[str] = ..., resumed: _Optional[bool] = ..., hello_retry: _Optional[bool] = ..., signature_scheme: _Optional[int] = ..., peer_signature_scheme: _Optional[int] = ..., peer: _Optional[_Union[PeerIdentity, _Mapping]] = ...) -> None: ...

class PeerIdentity(_message.Message):
    __slots__ = ("chain_der", "dns_sans", "uri_sans", "ip_sans", "subject")
    CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    DNS_SANS_FIELD_NUMBER: _ClassVar[int]
    URI_SANS_FIELD_NUMBER: _ClassVar[int]
    IP_SANS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    dns_sans: _containers.RepeatedScalarFieldContainer[str]
    uri_sans: _containers.RepeatedScalarFieldContainer[str]
    ip_sans: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    def __init__(self, chain_der: _Optional[_Iterable[bytes]] = ..., dns_sans: _Optional[_Iterable[str]] = ..., uri_sans: _Optional[_Iterable[str]] = ..., ip_sans: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ...) -> None: ...

class TrafficKeys(_message.Message):
    __slots__ = ("secret", "key", "iv", "sequence_number")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    IV_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    secret: bytes
    key: bytes
    iv: bytes
    sequence_number: int
    def __init__(self, secret: _Optional[bytes] = ..., key: _Optional[bytes] = ..., iv: _Optional[bytes] = ..., sequence_number: _Optional[int] = ...) -> None: ...

class Tls12Session(_message.Message):
    __slots__ = ("master_secret", "client_random", "server_random", "extended_master_secret")
    MASTER_SECRET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_RANDOM_FIELD_NUMBER: _ClassVar[int]
    SERVER_RANDOM_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_MASTER_SECRET_FIELD_NUMBER: _ClassVar[int]
    master_secret: bytes
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    def __init__(self, master_secret: _Optional[bytes] = ..., client_random: _Optional[bytes] = ..., server_random: _Optional[bytes] = ..., extended_master_secret: _Optional[bool] = ...) -> None: ...

class SessionKeys(_message.Message):
    __slots__ = ("version", "cipher_suite", "group", "alpn_protocol", "resumed", "server_name", "peer", "read", "write", "exporter_master_secret", "keylog", "peer_record_size_limit", "hello_retry", "signature_scheme", "peer_signature_scheme", "tls12")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_SUITE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ALPN_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_MASTER_SECRET_FIELD_NUMBER: _ClassVar[int]
    KEYLOG_FIELD_NUMBER: _ClassVar[int]
    PEER_RECORD_SIZE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HELLO_RETRY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    PEER_SIGNATURE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    TLS12_FIELD_NUMBER: _ClassVar[int]
    version: int
    cipher_suite: int
    group: int
    alpn_protocol: str
    resumed: bool
    server_name: str
    peer: PeerIdentity
    read: TrafficKeys
    write: TrafficKeys
    exporter_master_secret: bytes
    keylog: _containers.RepeatedScalarFieldContainer[str]
    peer_record_size_limit: int
    hello_retry: bool
    signature_scheme: int
    peer_signature_scheme: int
    tls12: Tls12Session
    def __init__(self, version: _Optional[int] = ..., cipher_suite: _Optional[int] = ..., group: _Optional[int] = ..., alpn_protocol: _Optional[str] = ..., resumed: _Optional[bool] = ..., server_name: _Optional[str] = ..., peer: _Optional[_Union[PeerIdentity, _Mapping]] = ..., read: _Optional[_Union[TrafficKeys, _Mapping]] = ..., write: _Optional[_Union[TrafficKeys, _Mapping]] = ..., exporter_master_secret: _Optional[bytes] = ..., keylog: _Optional[_Iterable[str]] = ..., peer_record_size_limit: _Optional[int] = ..., hello_retry: _Optional[bool] = ..., signature_scheme: _Optional[int] = ..., peer_signature_scheme: _Optional[int] = ..., tls12: _Optional[_Union[Tls12Session, _Mapping]] = ...) -> None: ...
