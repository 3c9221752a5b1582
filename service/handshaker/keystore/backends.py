"""Keystore backends chosen by URI: `dir:PATH` (the default), `memory:`, and plugins by entry point.

    open_keystore("dir:/var/lib/handshaker")     # a bare path means the same
    open_keystore("memory:")                     # in this process only; a development CA
    open_keystore("vault://kv/tls")              # the plugin registered for "vault"

A third-party backend registers a factory in the entry-point group
`handshaker.keystores` under its URI scheme; the factory takes the whole URI and
returns a KeyStore (base.py). Keys that live outside the process are AsyncKeys
(keyops.py). Private keys in a PKCS#11 token are not a keystore of their own: a
credential in a `dir:` keystore names its token key in `key-uri` (directory.py).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path

from . import devca
from .base import KeyStore, KeystoreError
from .directory import DirectoryKeyStore, development_policy
from .layout import DEFAULT_TRUST_BUNDLE, DEV_CA_BUNDLE
from .memory import MemoryKeyStore
from .pem import credential_from_key

ENTRY_POINT_GROUP = "handshaker.keystores"

KeystoreFactory = Callable[[str], KeyStore]

# RFC 3986 section 3.1; two letters at least, so a Windows drive ("C:") stays a path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


class UnknownKeystore(KeystoreError, ValueError):
    """No backend is registered for the URI's scheme."""


def keystore_scheme(uri: str) -> str:
    """The URI's scheme, lowercased; "dir" for a bare path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else "dir"


def directory_path(uri: str) -> Path | None:
    """The directory of a `dir:` URI or a bare path; None for any other scheme."""
    if keystore_scheme(uri) != "dir":
        return None
    return Path(uri[4:] if uri.lower().startswith("dir:") else uri).expanduser()


def memory_keystore(uri: str = "memory:") -> MemoryKeyStore:
    """`memory:`: a development CA and a `localhost` credential that live as long as the process."""
    ca_certificate, ca_key = devca.create_ca()
    key = devca.generate_private_key(devca.DEFAULT_KEY_TYPE)
    names = [devca.parse_san(s) for s in ("DNS:localhost", "IP:127.0.0.1", "IP:::1")]
    leaf = devca.issue(ca_certificate, ca_key, key, names)
    return MemoryKeyStore(
        credentials={"localhost": credential_from_key((leaf,), key, source="memory:localhost")},
        trust_bundles={DEV_CA_BUNDLE: (ca_certificate,), DEFAULT_TRUST_BUNDLE: (ca_certificate,)},
        default="localhost",
        policy=development_policy(),
    )


def registered_factories() -> dict[str, importlib.metadata.EntryPoint]:
    """The plugins' entry points, by scheme."""
    return {ep.name.lower(): ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def open_keystore(uri: str) -> KeyStore:
    """The keystore a URI names; raises UnknownKeystore or the backend's KeystoreError."""
    scheme = keystore_scheme(uri)
    path = directory_path(uri)
    if path is not None:
        return DirectoryKeyStore(path)
    if scheme == "memory":
        return memory_keystore(uri)
    if scheme == "pkcs11":
        raise UnknownKeystore(
            "a pkcs11: URI names a key, not a keystore: keep the chain in a dir: keystore and "
            "`handshaker keys import NAME --cert CHAIN.pem --key-uri 'pkcs11:...'`"
        )
    entry_point = registered_factories().get(scheme)
    if entry_point is None:
        known = ", ".join(sorted({"dir", "memory", *registered_factories()}))
        raise UnknownKeystore(
            f"no keystore backend for {scheme}: (known: {known}; plugins register in the "
            f"entry-point group {ENTRY_POINT_GROUP!r})"
        )
    factory: KeystoreFactory = entry_point.load()
    store = factory(uri)
    if not isinstance(store, KeyStore):
        raise UnknownKeystore(f"the {scheme}: plugin {entry_point.value} returned no KeyStore")
    return store
