"""Who is calling: the identity sessions are owned by.

With mutual TLS on the gRPC channel the caller is its certificate (first
subjectAltName, else common name). Without it, every caller reaching the
loopback address or the Unix socket is the same local principal: the socket's
reach is the boundary, and session ids are unguessable tokens besides.
"""

from __future__ import annotations

import grpc

LOCAL_CALLER = "local"


def caller_identity(context: grpc.aio.ServicerContext[object, object]) -> str:
    auth = context.auth_context()
    sans = list(auth.get("x509_subject_alternative_name", ()))
    if sans:
        return "x509:" + bytes(sans[0]).decode("utf-8", "replace")
    common_name = list(auth.get("x509_common_name", ()))
    if common_name:
        return "x509-cn:" + bytes(common_name[0]).decode("utf-8", "replace")
    return LOCAL_CALLER
