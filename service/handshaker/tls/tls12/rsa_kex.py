"""The TLS 1.2 RSA key exchange (RFC 5246 section 7.4.7.1): the premaster secret, both ends.

Opt-in only (no forward secrecy). The server side is the RFC's countermeasure to
Bleichenbacher's attack, without a branch on the secret:

    1. Generate a string R of 46 random bytes
    2. Decrypt the message to recover the plaintext M
    3. If the PKCS#1 padding is not correct, or the length of message M is not
       exactly 48 bytes:
          pre_master_secret = ClientHello.client_version || R
       else [...]
          pre_master_secret = ClientHello.client_version || M[2..47]

A bad padding (which the decryption itself already answers with a pseudo-random
plaintext: implicit rejection in OpenSSL 3.2+, or b"" from a backend that fails),
a wrong length and a wrong version all give a premaster secret the client does not
have, so every one of them ends at the client's Finished, whose record does not
authenticate under the keys we derived (bad_record_mac), after the same steps.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import UnsupportedCertificate

PREMASTER_LEN = 48


def client_premaster(client_version: int, random46: bytes) -> bytes:
    """struct { ProtocolVersion client_version; opaque random[46]; } PreMasterSecret;"""
    assert len(random46) == PREMASTER_LEN - 2
    return client_version.to_bytes(2, "big") + random46


def encrypt_premaster(leaf: x509.Certificate, premaster: bytes) -> bytes:
    """The client's EncryptedPreMasterSecret under the server certificate's RSA key."""
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnsupportedCertificate("the RSA key exchange needs an RSA server certificate")
    return key.encrypt(premaster, padding.PKCS1v15())


def allows_key_encipherment(leaf: x509.Certificate) -> bool:
    """RFC 5280 section 4.2.1.3: an RSA key-transport key needs keyEncipherment, when the
    certificate restricts its key's use at all."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.key_encipherment)


def server_premaster(decrypted: bytes, client_version: int, random46: bytes) -> bytes:
    """The premaster secret from what decryption gave, in constant time (see the module)."""
    assert len(random46) == PREMASTER_LEN - 2
    # Both candidates are built in full and blended with a mask: no branch, no early
    # exit on which one is used. (Python's len() and == on ints do not depend on the
    # bytes' values.)
    candidate = (decrypted + bytes(PREMASTER_LEN))[2:PREMASTER_LEN]
    mask = -int(len(decrypted) == PREMASTER_LEN) & 0xFF
    inverse = mask ^ 0xFF
    chosen = bytes((m & mask) | (r & inverse) for m, r in zip(candidate, random46, strict=True))
    return client_version.to_bytes(2, "big") + chosen
