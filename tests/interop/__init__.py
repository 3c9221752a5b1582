"""Interop tests: the engine against independent TLS stacks over 127.0.0.1."""
