"""TLS 1.2 (RFC 5246): ECDHE key exchange with AEAD suites only, both roles.

Beside tls13/, never inside it: what both versions share lives one level up and
says it is version-neutral (the ClientHello codec, groups, signature schemes,
the record framing, the core). No CBC, RC4, export, static (EC)DH, compression
or renegotiation; the extended master secret (RFC 7627) and renegotiation_info
(RFC 5746) are always sent.
"""

from .. import compiled as _compiled

__path__ = _compiled.search_path(__path__, "tls12")
