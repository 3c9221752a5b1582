"""A keystore held in this process only: for tests and for embedding callers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from cryptography import x509

from handshaker.tls.config import Credential

from .base import KeyNotFound, KeystoreSnapshot
from .pem import load_credential
from .policy import EMPTY_POLICY, Policy


class MemoryKeyStore:
    """Credentials and trust bundles kept in memory; every change swaps a whole snapshot."""

    def __init__(
        self,
        credentials: dict[str, Credential] | None = None,
        trust_bundles: dict[str, Iterable[x509.Certificate]] | None = None,
        default: str | None = None,
        policy: Policy = EMPTY_POLICY,
    ) -> None:
        self._lock = threading.Lock()
        self._policy = policy
        self._snapshot = KeystoreSnapshot(
            credentials=dict(credentials or {}),
            trust_bundles={k: tuple(v) for k, v in (trust_bundles or {}).items()},
            default=default,
        )

    def __repr__(self) -> str:
        return (
            f"MemoryKeyStore(credentials={self.names()}, trust_bundles={self.trust_bundle_names()})"
        )

    # The KeyStore protocol.

    def credential(self, name: str) -> Credential:
        return self._snapshot.credential(name)

    def select(
        self,
        server_name: str | None,
        signature_schemes: Sequence[int],
        allowed: Callable[[str], bool] | None = None,
    ) -> Credential | None:
        return self._snapshot.select(server_name, signature_schemes, allowed)

    def trust_bundle(self, name: str) -> tuple[x509.Certificate, ...]:
        return self._snapshot.trust_bundle(name)

    def names(self) -> list[str]:
        return self._snapshot.names()

    def trust_bundle_names(self) -> list[str]:
        return self._snapshot.trust_bundle_names()

    def default_name(self) -> str | None:
        return self._snapshot.default

    def policy(self) -> Policy:
        return self._policy

    def set_policy(self, policy: Policy) -> None:
        self._policy = policy

    # Changes.

    def add_credential(self, name: str, credential: Credential, *, default: bool = False) -> None:
        with self._lock:
            old = self._snapshot
            self._snapshot = KeystoreSnapshot(
                credentials={**old.credentials, name: credential},
                trust_bundles=old.trust_bundles,
                default=name if default else old.default,
            )

    def import_credential(
        self, name: str, chain_pem: bytes, key_pem: bytes, *, default: bool = False
    ) -> Credential:
        """Adds a credential from PEM; refuses a key that does not match the leaf."""
        credential = load_credential(chain_pem, key_pem, source=name)
        self.add_credential(name, credential, default=default)
        return credential

    def remove_credential(self, name: str) -> None:
        with self._lock:
            old = self._snapshot
            if name not in old.credentials:
                raise KeyNotFound(f"no credential named {name!r}")
            self._snapshot = KeystoreSnapshot(
                credentials={k: v for k, v in old.credentials.items() if k != name},
                trust_bundles=old.trust_bundles,
                default=None if old.default == name else old.default,
            )

    def add_trust_bundle(self, name: str, certificates: Iterable[x509.Certificate]) -> None:
        with self._lock:
            old = self._snapshot
            self._snapshot = KeystoreSnapshot(
                credentials=old.credentials,
                trust_bundles={**old.trust_bundles, name: tuple(certificates)},
                default=old.default,
            )

    def set_default(self, name: str | None) -> None:
        with self._lock:
            old = self._snapshot
            if name is not None and name not in old.credentials:
                raise KeyNotFound(f"no credential named {name!r}")
            self._snapshot = KeystoreSnapshot(
                credentials=old.credentials, trust_bundles=old.trust_bundles, default=name
            )
