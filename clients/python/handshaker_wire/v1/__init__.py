"""Generated gRPC stubs for handshaker.v1 (regenerate with scripts/gen_protos.sh; never edit)."""
