"""The Python multiplexer never sends more frames in one message than the service accepts."""

from __future__ import annotations

import asyncio

from handshaker_client import multiplex
from handshaker_wire.v1 import handshaker_pb2 as pb


class _FakeCall:
    """A Multiplex call that answers every request at once, recording its size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._answers: asyncio.Queue[pb.MultiplexResponse] = asyncio.Queue()

    async def write(self, request: pb.MultiplexRequest) -> None:
        self.sizes.append(len(request.frames))
        response = pb.MultiplexResponse()
        for frame in request.frames:
            response.results.add(connection_id=frame.connection_id)
        await self._answers.put(response)

    async def read(self) -> pb.MultiplexResponse:
        return await self._answers.get()

    async def done_writing(self) -> None:
        pass

    def cancel(self) -> None:
        pass


def test_a_large_batch_is_split_under_the_cap() -> None:
    async def run() -> list[int]:
        call = _FakeCall()
        stream = multiplex._Stream(call)  # type: ignore[arg-type]
        futures = [stream.send(pb.ConnectionFrame(connection_id=i)) for i in range(1, 301)]
        results = await asyncio.wait_for(asyncio.gather(*futures), 10)  # type: ignore[arg-type]
        assert [r.connection_id for r in results] == list(range(1, 301))
        await stream.close()
        return call.sizes

    sizes = asyncio.run(run())
    assert sum(sizes) == 300
    assert max(sizes) <= multiplex.MAX_FRAMES_PER_MESSAGE == 128
