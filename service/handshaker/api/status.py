"""Misuse of an RPC as its gRPC status: the exception the servicer raises, and the
wrapper that answers a unary RPC with it (streams answer it themselves)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc


class StatusError(Exception):
    """A request the servicer refuses: the status code and a message naming the field."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Servicer = TypeVar("_Servicer")
_Handler = Callable[
    [_Servicer, _Request, grpc.aio.ServicerContext[object, object]], Awaitable[_Response]
]


def unary(
    handler: _Handler[_Servicer, _Request, _Response],
) -> _Handler[_Servicer, _Request, _Response]:
    """Answer a unary RPC's misuse (StatusError) with its gRPC status, in one place."""

    @functools.wraps(handler)
    async def wrapper(
        self: _Servicer, request: _Request, context: grpc.aio.ServicerContext[object, object]
    ) -> _Response:
        try:
            return await handler(self, request, context)
        except StatusError as abort:
            await context.abort(abort.code, abort.message)
            raise  # context.abort raises; this line only satisfies the type checker

    return wrapper
