"""The PKCS#11 backend: private keys in a token (an HSM, SoftHSM2), named by RFC 7512 URIs.

    pkcs11:token=prod;object=web?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin

A key is found by its token label and its object label and/or CKA_ID. The module is
the URI's `module-path`, else the `--pkcs11-module` setting, else the SoftHSM2
module found on this system. The user PIN comes from the URI's `pin-source`
(a file) or from $HANDSHAKER_PKCS11_PIN; never from a command-line argument
(`pin-value` is refused) and never into a message or a log line.

Keys are used through `Pkcs11Key`, an AsyncKey: each operation runs the blocking
PKCS#11 call in a dedicated thread pool with one logged-in session per worker
(`sessions`, the `--pkcs11-sessions` flag), so the event loop never waits on a
token. Signatures: ECDSA (CKM_ECDSA over the hash computed here, r||s re-encoded
as DER), RSASSA-PSS (CKM_RSA_PKCS_PSS, MGF1 and salt length = the hash's) and
RSASSA-PKCS1-v1_5 (CKM_RSA_PKCS over a DigestInfo, for TLS 1.2). A token that is
absent, refuses the PIN or fails is a KeyOperationError naming
"pkcs11:token=LABEL"; the pool is reopened on the next operation, and after a
token failure the module is initialised again (rate-limited), which is how a
module notices a token that was put back. A refused PIN is not tried again
until the PIN source says something else: tokens lock after a few wrong tries.

python-pkcs11 calls C_Initialize(NULL), which tells a module that nobody will call
it from two threads at once (SoftHSM2 then turns its own locks off). We initialise
the module first with CKF_OS_LOCKING_OK, so the sessions of the pool may really work
in parallel; a module that refuses OS locking gets one lock around every call.
"""

from __future__ import annotations

from .keys import (
    TOKEN_KEY_TYPES,
    Pkcs11Key,
    admin_session,
    generate_key_pair,
    key_attributes,
    key_for_certificate,
    public_key_on_token,
)
from .pool import TokenPool, close_all, pool_for, pools, probe, unusable
from .uri import (
    DEFAULT_SESSIONS,
    PIN_ENV,
    Pkcs11Error,
    Pkcs11Settings,
    Pkcs11Uri,
    configure,
    default_module_path,
    read_pin,
    settings,
)

__all__ = [
    "DEFAULT_SESSIONS",
    "PIN_ENV",
    "TOKEN_KEY_TYPES",
    "Pkcs11Error",
    "Pkcs11Key",
    "Pkcs11Settings",
    "Pkcs11Uri",
    "TokenPool",
    "admin_session",
    "close_all",
    "configure",
    "default_module_path",
    "generate_key_pair",
    "key_attributes",
    "key_for_certificate",
    "pool_for",
    "pools",
    "probe",
    "public_key_on_token",
    "read_pin",
    "settings",
    "unusable",
]
