"""What the service and its Python client share on the wire: the generated gRPC stubs
(handshaker_wire.v1), HKDF-Expand-Label and the AEAD record protections of TLS 1.3 and
TLS 1.2. Version-neutral where it says so; no handshake logic, no I/O."""
