"""fast_frozen_init keeps a frozen dataclass a frozen dataclass, compiled or not."""

from __future__ import annotations

import dataclasses

import pytest
from handshaker.tls import compiled
from handshaker.tls.events import TrafficKeys
from handshaker.tls.fastinit import fast_frozen_init


def test_the_fast_init_sets_every_field_and_the_class_stays_frozen() -> None:
    keys = TrafficKeys(b"secret", b"key", b"iv", 7)
    assert (keys.secret, keys.key, keys.iv, keys.sequence_number) == (b"secret", b"key", b"iv", 7)
    assert keys == TrafficKeys(secret=b"secret", key=b"key", iv=b"iv", sequence_number=7)
    assert dataclasses.replace(keys, sequence_number=8).sequence_number == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.key = b"other"  # type: ignore[misc]
    # Which __init__ runs: the one made here, in either build.
    assert "_set_0" in TrafficKeys.__init__.__globals__, compiled.ENGINE


def test_a_class_it_cannot_speed_up_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        a: int

    with pytest.raises(TypeError, match="only frozen, slotted dataclasses"):
        fast_frozen_init(Unslotted)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="a field fast_frozen_init cannot set"):
        fast_frozen_init(Factory)
