"""gRPC servicers: proto <-> engine translation, caller identity, status codes. No TLS logic."""

from .options import ConfigFactory, InvalidOptions
from .servicer import HandshakerServicer
from .stats import HandshakeStats

__all__ = ["ConfigFactory", "HandshakeStats", "HandshakerServicer", "InvalidOptions"]
