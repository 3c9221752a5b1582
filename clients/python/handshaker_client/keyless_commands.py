"""`handshaker keys sign` and `handshaker keys verify-chain`: the keyless services for scripts.

    handshaker keys sign web --scheme ecdsa_secp256r1_sha256 --in msg.bin > sig.b64
    handshaker keys verify-chain chain.pem --dns-name example.com --trust-bundle system

Both talk to a running service (--handshaker, $HANDSHAKER_ADDR); the key never leaves
it. `sign` prints the signature in base64 (or writes it raw with --out); `verify-chain`
prints the verdict and exits 0 when the chain is valid, 1 when it is not.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path

from .commands import UsageError, service_failure
from .constants import SignatureScheme, alert_name
from .errors import HandshakerRpcError
from .handshake import resolve_address
from .keyless import KeylessClient

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
# What `sign` reads from a file or stdin: far more than any TLS signature input.
MAX_INPUT = 1 << 20


def parse_scheme(text: str) -> int:
    """A signature scheme by IANA name (ecdsa_secp256r1_sha256) or number (0x0403, 1027)."""
    try:
        return SignatureScheme[text.upper()].value
    except KeyError:
        pass
    try:
        value = int(text, 0)
    except ValueError:
        names = ", ".join(s.name.lower() for s in SignatureScheme)
        raise UsageError(f"unknown signature scheme {text!r} (one of {names})") from None
    if not 0 < value <= 0xFFFF:
        raise UsageError(f"a signature scheme is a 16-bit number, not {text}")
    return value


def _say(message: str) -> None:
    print(f"handshaker keys: {message}", file=sys.stderr)


def _read(path: str, what: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(MAX_INPUT + 1)
    except OSError as error:
        raise UsageError(f"cannot read the {what} {path}: {error.strerror or error}") from None
    if len(data) > MAX_INPUT:
        raise UsageError(f"the {what} is larger than {MAX_INPUT} bytes")
    return data


def _key(args: argparse.Namespace) -> str | bytes:
    if args.key_id is not None:
        try:
            return bytes.fromhex(args.key_id.replace(":", ""))
        except ValueError:
            raise UsageError("--key-id is the subjectKeyIdentifier in hex") from None
    if args.name is None:
        raise UsageError("name the credential, or give --key-id")
    name: str = args.name
    return name


def sign_command(args: argparse.Namespace) -> int:
    """Runs `handshaker keys sign`; returns the exit status."""
    address = resolve_address(args.handshaker)
    try:
        key = _key(args)
        scheme = parse_scheme(args.scheme)
        data = _read(args.input, "input")
        with KeylessClient(address) as client:
            if args.digest:
                signature = client.sign(key, scheme, digest=data)
            else:
                signature = client.sign(key, scheme, message=data)
    except UsageError as error:
        _say(f"error: {error}")
        return 2
    except HandshakerRpcError as error:
        _say(service_failure(address, error))
        return 1
    if args.out is not None:
        try:
            Path(args.out).write_bytes(signature)
        except OSError as error:
            _say(f"cannot write {args.out}: {error.strerror or error}")
            return 1
    else:
        print(base64.b64encode(signature).decode())
    return 0


def _chain(data: bytes) -> list[bytes]:
    """DER certificates from PEM blocks, or one DER certificate."""
    blocks = _PEM.findall(data)
    if not blocks:
        return [data]
    chain = []
    for block in blocks:
        body = b"".join(block.splitlines()[1:-1])
        try:
            chain.append(base64.b64decode(body, validate=True))
        except ValueError:
            raise UsageError("a PEM block of the chain is not base64") from None
    return chain


def verify_chain_command(args: argparse.Namespace) -> int:
    """Runs `handshaker keys verify-chain`; 0 valid, 1 invalid or refused, 2 misuse."""
    address = resolve_address(args.handshaker)
    try:
        chain = _chain(_read(args.chain, "chain"))
        with KeylessClient(address) as client:
            verdict = client.validate_chain(
                chain,
                purpose=args.purpose,
                dns_name=args.dns_name,
                ip_address=args.ip_address,
                spiffe_id=args.spiffe_id,
                trust_bundle=args.trust_bundle,
            )
    except UsageError as error:
        _say(f"error: {error}")
        return 2
    except HandshakerRpcError as error:
        _say(service_failure(address, error))
        return 1
    if verdict.valid:
        print(f"valid: a path of {len(verdict.verified_path)} certificates to a trust anchor")
        return 0
    print(f"invalid: {alert_name(verdict.alert)} ({verdict.alert}): {verdict.reason}")
    return 1
