"""TLS 1.3 state machines, one module per role (TLS 1.2 will sit beside them)."""
