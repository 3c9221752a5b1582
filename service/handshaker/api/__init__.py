"""gRPC servicers: proto <-> engine translation, caller identity, status codes. No TLS logic."""

from .options import ConfigFactory, InvalidOptions
from .servicer import HandshakerServicer

__all__ = ["ConfigFactory", "HandshakerServicer", "InvalidOptions"]
