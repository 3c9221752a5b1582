"""RFC 7512 PKCS#11 URIs, the process's PKCS#11 settings, which module a URI loads,
and the PIN (from a file or $HANDSHAKER_PKCS11_PIN, never from a flag or into a log)."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..base import KeystoreError

PIN_ENV = "HANDSHAKER_PKCS11_PIN"


SCHEME = "pkcs11"


DEFAULT_SESSIONS = 4

# Where Debian, Ubuntu, Fedora and source builds put the SoftHSM2 module.
SOFTHSM2_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

# RFC 7512 section 2.3: the path attributes and query attributes we understand.
_PATH_ATTRIBUTES = frozenset(
    {
        "token",
        "object",
        "id",
        "type",
        "serial",
        "manufacturer",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "slot-description",
        "slot-manufacturer",
        "slot-id",
    }
)


_QUERY_ATTRIBUTES = frozenset({"module-path", "module-name", "pin-source", "pin-value"})


class Pkcs11Error(KeystoreError):
    """A PKCS#11 URI, module, token, PIN or key problem; messages name the token, never the PIN."""


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """An RFC 7512 PKCS#11 URI, as far as finding one key needs it."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    object_type: str | None = None
    module_path: str | None = None
    pin_source: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parses `pkcs11:path-attributes[?query-attributes]`; raises Pkcs11Error."""
        scheme, colon, rest = text.strip().partition(":")
        if not colon or scheme.lower() != SCHEME:
            raise Pkcs11Error(
                f"not a PKCS#11 URI (RFC 7512): it must start with 'pkcs11:': {text!r}"
            )
        path, _, query = rest.partition("?")
        values: dict[str, str | bytes] = {}
        for part, separator, known in (
            (path, ";", _PATH_ATTRIBUTES),
            (query, "&", _QUERY_ATTRIBUTES),
        ):
            for item in filter(None, part.split(separator)):
                name, equals, value = item.partition("=")
                name = name.strip().lower()
                if not equals:
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} has no value")
                if name == "pin-value":
                    # A PIN in the URI ends up in shell history, `ps` and the keystore folder.
                    raise Pkcs11Error(
                        "pin-value is not accepted: give the PIN in a file (pin-source=file:PATH) "
                        f"or in ${PIN_ENV}"
                    )
                if name not in known:
                    # RFC 7512: an unknown path attribute must not match anything we would pick.
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} is not supported")
                if name in values:
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} is given twice")
                # The id is binary; every other attribute is UTF-8 text.
                values[name] = (
                    urllib.parse.unquote_to_bytes(value)
                    if name == "id"
                    else urllib.parse.unquote(value, errors="strict")
                )

        def text_of(name: str) -> str | None:
            value = values.get(name)
            return value if isinstance(value, str) else None

        raw_id = values.get("id")
        uri = cls(
            token=text_of("token"),
            object=text_of("object"),
            id=raw_id if isinstance(raw_id, bytes) else None,
            serial=text_of("serial"),
            object_type=text_of("type"),
            module_path=text_of("module-path"),
            pin_source=text_of("pin-source"),
        )
        if uri.object_type not in (None, "private"):
            raise Pkcs11Error(
                f"the PKCS#11 URI names a {uri.object_type!r} object, not a private key"
            )
        return uri

    def __str__(self) -> str:
        def quote(value: str | bytes) -> str:
            # The id is binary: every byte percent-encoded, as RFC 7512's examples do.
            if isinstance(value, bytes):
                return "".join(f"%{byte:02X}" for byte in value)
            return urllib.parse.quote(value, safe="")

        path = [
            f"{name}={quote(value)}"
            for name, value in (
                ("token", self.token),
                ("serial", self.serial),
                ("object", self.object),
                ("id", self.id),
                ("type", self.object_type),
            )
            if value is not None
        ]
        query = [
            f"{name}={urllib.parse.quote(value, safe='/:')}"
            for name, value in (("module-path", self.module_path), ("pin-source", self.pin_source))
            if value is not None
        ]
        return f"pkcs11:{';'.join(path)}" + (f"?{'&'.join(query)}" if query else "")

    @property
    def backend(self) -> str:
        """How failures name this token: never with the PIN source or the module."""
        return f"pkcs11:token={self.token}" if self.token else "pkcs11"

    @property
    def names_a_key(self) -> bool:
        return self.object is not None or self.id is not None


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """Process-wide defaults: the module (--pkcs11-module), the pool size (--pkcs11-sessions)."""

    module_path: str | None = None
    sessions: int = DEFAULT_SESSIONS


_settings = Pkcs11Settings()


def configure(settings: Pkcs11Settings) -> None:
    """Sets the defaults for URIs that name no module, and the session pool size."""
    global _settings  # noqa: PLW0603 (one PKCS#11 world per process: C_Initialize is global)
    if settings.sessions < 1:
        raise ValueError("--pkcs11-sessions must be at least 1")
    _settings = settings


def settings() -> Pkcs11Settings:
    return _settings


def default_module_path() -> str | None:
    """The SoftHSM2 module found on this system, or None."""
    return next((path for path in SOFTHSM2_MODULES if Path(path).is_file()), None)


def module_path_for(uri: Pkcs11Uri, config: Pkcs11Settings | None = None) -> str:
    config = config or _settings
    path = uri.module_path or config.module_path or default_module_path()
    if path is None:
        raise Pkcs11Error(
            "no PKCS#11 module: give module-path in the URI or --pkcs11-module "
            "(for SoftHSM2: apt-get install softhsm2)"
        )
    return path


def read_pin(uri: Pkcs11Uri) -> str:
    """The user PIN from the URI's pin-source file, else $HANDSHAKER_PKCS11_PIN."""
    if uri.pin_source is not None:
        source = uri.pin_source.removeprefix("file:")
        if source.startswith("//"):
            source = urllib.parse.urlparse(uri.pin_source).path
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise Pkcs11Error(f"{uri.backend}: cannot read the PIN file {source}") from None
        # Only the first line: `echo PIN > file` leaves a newline that is not part of the PIN.
        return text.partition("\n")[0].removesuffix("\r")
    pin = os.environ.get(PIN_ENV)
    if pin is None:
        raise Pkcs11Error(
            f"{uri.backend}: no PIN: set ${PIN_ENV} or pin-source=file:PATH in the URI"
        )
    return pin
