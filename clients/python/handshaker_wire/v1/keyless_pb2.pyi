import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_SERVER_AUTH: _ClassVar[Purpose]
    PURPOSE_CLIENT_AUTH: _ClassVar[Purpose]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_VALID: _ClassVar[Verdict]
    VERDICT_INVALID: _ClassVar[Verdict]
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_SERVER_AUTH: Purpose
PURPOSE_CLIENT_AUTH: Purpose
VERDICT_UNSPECIFIED: Verdict
VERDICT_VALID: Verdict
VERDICT_INVALID: Verdict

class KeyReference(_message.Message):
    __slots__ = ("credential", "subject_key_id")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    credential: str
    subject_key_id: bytes
    def __init__(self, credential: _Optional[str] = ..., subject_key_id: _Optional[bytes] = ...) -> None: ...

class SignRequest(_message.Message):
    __slots__ = ("key", "signature_scheme", "message", "digest")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    key: KeyReference
    signature_scheme: int
    message: bytes
    digest: bytes
    def __init__(self, key: _Optional[_Union[KeyReference, _Mapping]] = ..., signature_scheme: _Optional[int] = ..., message: _Optional[bytes] = ..., digest: _Optional[bytes] = ...) -> None: ...

class SignResponse(_message.Message):
    __slots__ = ("signature",)
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    def __init__(self, signature: _Optional[bytes] = ...) -> None: ...

class DecryptRequest(_message.Message):
    __slots__ = ("key", "ciphertext", "plaintext_length")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    key: KeyReference
    ciphertext: bytes
    plaintext_length: int
    def __init__(self, key: _Optional[_Union[KeyReference, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., plaintext_length: _Optional[int] = ...) -> None: ...

class DecryptResponse(_message.Message):
    __slots__ = ("plaintext",)
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    plaintext: bytes
    def __init__(self, plaintext: _Optional[bytes] = ...) -> None: ...

class GetCredentialRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyReference
    def __init__(self, key: _Optional[_Union[KeyReference, _Mapping]] = ...) -> None: ...

class GetCredentialResponse(_message.Message):
    __slots__ = ("credential", "certificate_chain", "key_type", "signature_schemes", "decrypts", "subject_key_id")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SCHEMES_FIELD_NUMBER: _ClassVar[int]
    DECRYPTS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    credential: str
    certificate_chain: _containers.RepeatedScalarFieldContainer[bytes]
    key_type: str
    signature_schemes: _containers.RepeatedScalarFieldContainer[int]
    decrypts: bool
    subject_key_id: bytes
    def __init__(self, credential: _Optional[str] = ..., certificate_chain: _Optional[_Iterable[bytes]] = ..., key_type: _Optional[str] = ..., signature_schemes: _Optional[_Iterable[int]] = ..., decrypts: _Optional[bool] = ..., subject_key_id: _Optional[bytes] = ...) -> None: ...

class OperateRequest(_message.Message):
    __slots__ = ("operation_id", "sign", "decrypt", "get_credential")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    DECRYPT_FIELD_NUMBER: _ClassVar[int]
    GET_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    operation_id: int
    sign: SignRequest
    decrypt: DecryptRequest
    get_credential: GetCredentialRequest
    def __init__(self, operation_id: _Optional[int] = ..., sign: _Optional[_Union[SignRequest, _Mapping]] = ..., decrypt: _Optional[_Union[DecryptRequest, _Mapping]] = ..., get_credential: _Optional[_Union[GetCredentialRequest, _Mapping]] = ...) -> None: ...

class OperateResponse(_message.Message):
    __slots__ = ("operation_id", "sign", "decrypt", "get_credential", "error")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    DECRYPT_FIELD_NUMBER: _ClassVar[int]
    GET_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    operation_id: int
    sign: SignResponse
    decrypt: DecryptResponse
    get_credential: GetCredentialResponse
    error: OperationError
    def __init__(self, operation_id: _Optional[int] = ..., sign: _Optional[_Union[SignResponse, _Mapping]] = ..., decrypt: _Optional[_Union[DecryptResponse, _Mapping]] = ..., get_credential: _Optional[_Union[GetCredentialResponse, _Mapping]] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ...) -> None: ...

class OperationError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ValidateChainRequest(_message.Message):
    __slots__ = ("certificate_chain", "purpose", "dns_name", "ip_address", "spiffe_id", "trust_bundle", "validation_time")
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    DNS_NAME_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_TIME_FIELD_NUMBER: _ClassVar[int]
    certificate_chain: _containers.RepeatedScalarFieldContainer[bytes]
    purpose: Purpose
    dns_name: str
    ip_address: str
    spiffe_id: str
    trust_bundle: str
    validation_time: _timestamp_pb2.Timestamp
    def __init__(self, certificate_chain: _Optional[_Iterable[bytes]] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., dns_name: _Optional[str] = ..., ip_address: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., trust_bundle: _Optional[str] = ..., validation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ValidateChainResponse(_message.Message):
    __slots__ = ("verdict", "verified_path", "alert", "reason")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_PATH_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    verified_path: _containers.RepeatedScalarFieldContainer[bytes]
    alert: int
    reason: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., verified_path: _Optional[_Iterable[bytes]] = ..., alert: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
