"""TLS 1.3 state machines, one module per role (TLS 1.2 will sit beside them)."""

from .. import compiled as _compiled

__path__ = _compiled.search_path(__path__, "tls13")
