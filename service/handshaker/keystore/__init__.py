"""Where the service keeps its credentials and trust bundles: the KeyStore protocol and backends.

    store = DirectoryKeyStore("~/.local/share/handshaker/keystore")
    server = ServerConfig(credential_selector=store.select, ...)   # by SNI, then the default
    client = ClientConfig(trust_anchors=store.trust_bundle("default"), ...)

A backend hands out Credentials whose private key is a Signer (used inline by the
engine) or an AsyncKey (its operations awaited by the service, keyops.py); key
bytes never leave the backend, and no error, repr or log line carries them.
"""

from .base import (
    CredentialInfo,
    InvalidCredential,
    KeyNotFound,
    KeyStore,
    KeystoreError,
    KeystoreSnapshot,
    KeystoreUnavailable,
    describe,
    key_type,
    subject_alt_names,
)
from .devca import DEFAULT_KEY_TYPE, KEY_TYPES
from .directory import DirectoryKeyStore, ensure_development_ca
from .keyops import AsyncKey, KeyOperationError, perform
from .layout import DEFAULT_TRUST_BUNDLE, DEV_CA_BUNDLE, check_name
from .memory import MemoryKeyStore
from .pem import load_certificates, load_credential, load_private_key
from .policy import (
    EMPTY_POLICY,
    POLICY_FILE,
    ROLE_NAMES,
    AccessDenied,
    InvalidPolicy,
    Policy,
    Role,
    parse_policy,
)
from .principals import ANONYMOUS, LOCAL, InvalidPrincipal, Principal, PrincipalKind

__all__ = [
    "ANONYMOUS",
    "DEFAULT_KEY_TYPE",
    "DEFAULT_TRUST_BUNDLE",
    "DEV_CA_BUNDLE",
    "EMPTY_POLICY",
    "KEY_TYPES",
    "LOCAL",
    "POLICY_FILE",
    "ROLE_NAMES",
    "AccessDenied",
    "AsyncKey",
    "CredentialInfo",
    "DirectoryKeyStore",
    "InvalidCredential",
    "InvalidPolicy",
    "InvalidPrincipal",
    "KeyNotFound",
    "KeyOperationError",
    "KeyStore",
    "KeystoreError",
    "KeystoreSnapshot",
    "KeystoreUnavailable",
    "MemoryKeyStore",
    "Policy",
    "Principal",
    "PrincipalKind",
    "Role",
    "check_name",
    "describe",
    "ensure_development_ca",
    "key_type",
    "load_certificates",
    "load_credential",
    "load_private_key",
    "parse_policy",
    "perform",
    "subject_alt_names",
]
