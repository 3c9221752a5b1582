"""The directory keystore: the embedded default backend, in cert-manager's Secret layout.

Layout of the keystore directory (every name below is a credential or bundle name):

    <root>/                     0700
      <name>/                   one credential; a cert-manager Secret mounted as a folder
        tls.crt                 the certificate chain, PEM, leaf first
        tls.key                 the leaf's private key, PEM: EC, RSA, Ed25519 or Ed448,
                                PKCS#8 or traditional, unencrypted; written 0600
        key-uri                 instead of tls.key: one line, the URI of a key kept
                                elsewhere (`pkcs11:token=...;object=...`, RFC 7512); the
                                chain still comes from tls.crt and reloads as usual
        ca.crt                  optional: the trust bundle called <name>
      trust/<name>.pem          a trust bundle: one or more PEM certificates
      default                   optional: one line, the name of the default credential
      dev-ca/ca.crt, ca.key     the development CA, created on first use
      policy.toml               who may use which credential and trust bundle (policy.py);
                                absent: nobody may use any credential

- Entries whose name starts with "." are ignored (Kubernetes' ..data links, our
  temporary files); "trust" and "dev-ca" are not credential names.
- A trust bundle name resolves to trust/<name>.pem, else <name>/ca.crt. The bundle
  "dev-ca" is the development CA; "default" (what a client that names no bundle
  gets) is trust/default.pem, else the development CA.
- The default credential (served when no SAN matches the server_name) is the one
  the `default` file names, else the only credential when there is exactly one.
  Storing a credential through this class writes `default` when it is absent.

Changes are noticed without a restart: at most every `reload_interval` seconds an
access stats the files (inode, size, mtime, ctime) and re-reads only what
changed, then swaps in a whole new snapshot. A file that does not parse, or a
key that does not match its certificate (a half-written update), keeps the last
good credential and logs one warning naming the file, never its content. The
policy file reloads the same way: one that does not validate keeps the last good
policy (none yet: the empty, deny-all policy) and logs why.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from handshaker.tls.config import Credential
from handshaker.tls.signer import PrivateKey

from . import devca
from .directory_read import DirectoryReader
from .layout import (
    CA_FILE,
    CERT_FILE,
    CERT_MODE,
    DEFAULT_FILE,
    DEV_CA_BUNDLE,
    DEV_CA_DIR,
    KEY_FILE,
    KEY_MODE,
    KEY_URI_FILE,
    check_name,
    make_dir,
    remove_tree,
    write_file,
)
from .pem import (
    certificates_pem,
    credential_from_key,
    load_certificates,
    load_private_key,
    private_key_pem,
)
from .policy import EMPTY_POLICY, POLICY_FILE, Policy, Role, parse_policy
from .principals import LOCAL, Principal

log = logging.getLogger("handshaker.keystore")


class DirectoryKeyStore(DirectoryReader):
    """The directory keystore: what DirectoryReader reads, and the writes of `handshaker keys`."""

    def __repr__(self) -> str:
        return f"DirectoryKeyStore({str(self.root)!r})"

    def import_credential(
        self,
        name: str,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        ca_pem: bytes | None = None,
        replace: bool = False,
    ) -> Credential:
        """Stores a PEM chain and key under `name`; refuses a key that does not match the leaf."""
        check_name(name)
        chain = load_certificates(chain_pem, source=f"{name} certificate chain")
        key = load_private_key(key_pem, source=f"{name} private key")
        credential = credential_from_key(chain, key, source=name)
        ca = load_certificates(ca_pem, source=f"{name} CA bundle") if ca_pem is not None else None
        self._store_credential(name, chain, key, ca, replace=replace)
        return credential

    def import_key_uri(
        self,
        name: str,
        chain_pem: bytes,
        key_uri: str,
        *,
        ca_pem: bytes | None = None,
        replace: bool = False,
    ) -> Credential:
        """Stores a PEM chain and the URI of its key (kept in a token) under `name`.

        The caller checks that the token's key matches the leaf (it has the PIN);
        here the URI must only resolve to a key handle for the leaf.
        """
        check_name(name)
        chain = load_certificates(chain_pem, source=f"{name} certificate chain")
        handle = self._resolve_key_uri(key_uri, chain[0])
        credential = Credential(certificate_chain=chain, signer=handle)
        ca = load_certificates(ca_pem, source=f"{name} CA bundle") if ca_pem is not None else None
        self._store_files(
            name,
            [(KEY_URI_FILE, f"{key_uri}\n".encode(), KEY_MODE), *self._chain_files(chain, ca)],
            ca is not None,
            replace=replace,
            drop=KEY_FILE,
        )
        return credential

    def generate(
        self,
        name: str,
        sans: Sequence[str],
        key_type: str = devca.DEFAULT_KEY_TYPE,
        *,
        replace: bool = False,
    ) -> Credential:
        """Issues a credential from the development CA (creating the CA on first use)."""
        check_name(name)
        if key_type not in devca.KEY_TYPES:
            raise ValueError(
                f"unknown key type {key_type!r}; choose one of {', '.join(devca.KEY_TYPES)}"
            )
        general_names = [devca.parse_san(s) for s in sans]
        if not general_names:
            raise ValueError("give at least one subjectAltName, e.g. DNS:localhost")
        if not replace and (self.root / name).exists():
            raise FileExistsError(f"credential {name!r} already exists")
        ca_certificate, ca_key = self.load_or_create_development_ca()
        key = devca.generate_private_key(key_type)
        leaf = devca.issue(ca_certificate, ca_key, key, general_names)
        credential = credential_from_key((leaf,), key, source=name)
        self._store_credential(name, (leaf,), key, (ca_certificate,), replace=replace)
        return credential

    def generate_in_token(
        self,
        name: str,
        sans: Sequence[str],
        token_uri: str,
        key_type: str = devca.DEFAULT_KEY_TYPE,
        *,
        replace: bool = False,
    ) -> tuple[Credential, str]:
        """Makes the key pair on a PKCS#11 token and its certificate from the development CA.

        The private key never leaves the token (sensitive, not extractable); the
        folder gets tls.crt, ca.crt and key-uri. Returns the credential and the key's URI.
        """
        from . import pkcs11  # noqa: PLC0415 (the optional binding, only for token keys)

        check_name(name)
        if key_type not in pkcs11.TOKEN_KEY_TYPES:
            raise ValueError(
                f"key type {key_type!r} cannot be made on a token; choose one of "
                f"{', '.join(pkcs11.TOKEN_KEY_TYPES)}"
            )
        general_names = [devca.parse_san(s) for s in sans]
        if not general_names:
            raise ValueError("give at least one subjectAltName, e.g. DNS:localhost")
        if not replace and (self.root / name).exists():
            raise FileExistsError(f"credential {name!r} already exists")
        ca_certificate, ca_key = self.load_or_create_development_ca()
        key_uri, public_key = pkcs11.generate_key_pair(token_uri, name, key_type)
        leaf = devca.issue_for_public_key(ca_certificate, ca_key, public_key, general_names)
        credential = Credential(
            certificate_chain=(leaf,), signer=self._resolve_key_uri(key_uri, leaf)
        )
        self._store_files(
            name,
            [
                (KEY_URI_FILE, f"{key_uri}\n".encode(), KEY_MODE),
                *self._chain_files((leaf,), (ca_certificate,)),
            ],
            True,
            replace=replace,
            drop=KEY_FILE,
        )
        return credential, key_uri

    def set_default(self, name: str) -> None:
        """Names the credential served when no SAN matches."""
        check_name(name)
        self._ensure_root()
        write_file(self.root / DEFAULT_FILE, f"{name}\n".encode(), CERT_MODE)
        self._next_check = 0.0

    def write_policy(self, policy: Policy) -> None:
        """Replaces the policy file atomically (the service reloads it within a second)."""
        self._ensure_root()
        write_file(self.root / POLICY_FILE, policy.to_toml().encode(), CERT_MODE)
        self._next_check = 0.0

    def edit_policy(self, edit: Callable[[Policy], Policy]) -> Policy:
        """Applies `edit` to the policy on disk and writes the result; returns it.

        A policy file that does not validate is an InvalidPolicy here rather than
        being overwritten: the operator's broken edit is theirs to fix, not to lose.
        Edits hold an exclusive lock on a file beside it, so two `keys allow` at
        once both land instead of one overwriting the other.
        """
        self._ensure_root()
        lock = os.open(self.root / f".{POLICY_FILE}.lock", os.O_RDWR | os.O_CREAT, CERT_MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            edited = edit(self.read_policy_file())
            self.write_policy(edited)
        finally:
            os.close(lock)  # closing releases the lock
        return edited

    def read_policy_file(self) -> Policy:
        """The policy on disk, strictly: an InvalidPolicy, not the last good one, if it is bad."""
        path = self.root / POLICY_FILE
        if not path.exists():
            return EMPTY_POLICY
        return parse_policy(path.read_text(encoding="utf-8"), source=str(path))

    @property
    def development_ca_path(self) -> Path:
        """Where the development CA certificate is (it may not exist yet)."""
        return self.root / DEV_CA_DIR / CA_FILE

    def load_or_create_development_ca(self) -> tuple[x509.Certificate, PrivateKey]:
        """The development CA certificate and key, created on first use."""
        folder = self.root / DEV_CA_DIR
        if not (folder / CA_FILE).exists():
            self._ensure_root()
            certificate, new_key = devca.create_ca()
            staging = self.root / f".{DEV_CA_DIR}.new-{secrets.token_hex(4)}"
            make_dir(staging)
            write_file(staging / "ca.key", private_key_pem(new_key), KEY_MODE)
            write_file(staging / CA_FILE, certificates_pem([certificate]), CERT_MODE)
            try:
                staging.rename(folder)
            except OSError:
                # Another process created it first; use theirs.
                remove_tree(staging)
            else:
                self._next_check = 0.0
                log.info("created the development CA at %s", folder / CA_FILE)
        certificates = load_certificates(
            (folder / CA_FILE).read_bytes(), source=str(folder / CA_FILE)
        )
        key = load_private_key((folder / "ca.key").read_bytes(), source=str(folder / "ca.key"))
        return certificates[0], key

    def ensure_development_ca(self) -> Path:
        """On a keystore without credentials: creates the development CA and `localhost`.

        `localhost` (DNS:localhost, IP:127.0.0.1, IP:::1) becomes the default, so a
        fresh install serves at once, and a policy is written (when there is none) that
        lets `local` and this process's own uid use `localhost` and the `dev-ca` bundle,
        and nothing else. A keystore that already holds credentials is
        left alone (it may be a read-only mount). Returns the path of the development
        CA certificate, which exists unless the keystore came with its own credentials.
        """
        if self.root.is_dir() and any(kind == "credential" for kind, _ in self._scan()):
            return self.development_ca_path
        self.load_or_create_development_ca()
        self.generate("localhost", ["DNS:localhost", "IP:127.0.0.1", "IP:::1"])
        if self.default_name() is None:
            self.set_default("localhost")
        if not (self.root / POLICY_FILE).exists():
            self.write_policy(development_policy())
        log.info("created the development credential 'localhost'")
        return self.development_ca_path

    def _ensure_root(self) -> None:
        if not self.root.exists():
            make_dir(self.root, parents=True)

    def _store_credential(
        self,
        name: str,
        chain: Sequence[x509.Certificate],
        key: PrivateKey,
        ca: Sequence[x509.Certificate] | None,
        *,
        replace: bool,
    ) -> None:
        files = [(KEY_FILE, private_key_pem(key), KEY_MODE), *self._chain_files(chain, ca)]
        self._store_files(name, files, bool(ca), replace=replace, drop=KEY_URI_FILE)

    @staticmethod
    def _chain_files(
        chain: Sequence[x509.Certificate], ca: Sequence[x509.Certificate] | None
    ) -> list[tuple[str, bytes, int]]:
        files = [(CERT_FILE, certificates_pem(list(chain)), CERT_MODE)]
        if ca:
            files.append((CA_FILE, certificates_pem(list(ca)), CERT_MODE))
        return files

    def _store_files(
        self,
        name: str,
        files: list[tuple[str, bytes, int]],
        ca: bool,
        *,
        replace: bool,
        drop: str,
    ) -> None:
        self._ensure_root()
        folder = self.root / name
        if folder.exists():
            if not replace:
                raise FileExistsError(f"credential {name!r} already exists")
            # Each file is replaced atomically; a reader between two renames sees a
            # key that does not match its certificate and keeps the old credential.
            for file_name, data, mode in files:
                write_file(folder / file_name, data, mode)
            # The other kind of key goes: a folder holds tls.key or key-uri, never both.
            with contextlib.suppress(FileNotFoundError):
                (folder / drop).unlink()
            if not ca:
                with contextlib.suppress(FileNotFoundError):
                    (folder / CA_FILE).unlink()
        else:
            # A new credential appears whole: written aside, then renamed into place.
            staging = self.root / f".{name}.new-{secrets.token_hex(4)}"
            make_dir(staging)
            try:
                for file_name, data, mode in files:
                    write_file(staging / file_name, data, mode)
                staging.rename(folder)
            except OSError:
                remove_tree(staging)
                raise
            if not (self.root / DEFAULT_FILE).exists():
                # The first credential stored becomes the default, so a keystore
                # grown one credential at a time keeps serving the one it started with.
                write_file(self.root / DEFAULT_FILE, f"{name}\n".encode(), CERT_MODE)
        self._next_check = 0.0


def development_policy() -> Policy:
    """What a fresh keystore allows: `local` and our own uid may use the development pieces."""
    policy = EMPTY_POLICY
    for principal in (LOCAL, Principal.unix_uid(os.getuid())):
        policy = policy.grant_credential("localhost", principal, (Role.SERVER, Role.CLIENT))
        policy = policy.grant_trust_bundle(DEV_CA_BUNDLE, principal)
    return policy


def ensure_development_ca(path: str | os.PathLike[str]) -> Path:
    """Creates, on first use, the development CA and a `localhost` credential in `path`.

    Returns the path of the development CA certificate (see
    DirectoryKeyStore.ensure_development_ca: a keystore with credentials is left alone).
    """
    return DirectoryKeyStore(path).ensure_development_ca()
