"""Which daemon owns which sensor: a stable hash of the sensor id and jump consistent hashing.

The rule, fixed forever (tests/test_shard.py pins it with golden ids):

1. ``key = first 8 bytes of blake2b(sensor_id UTF-8, digest_size=8)`` as a big-endian unsigned
   64-bit integer. Same on every machine, byte order and Python version (``hash()`` is salted per
   process and would give every daemon its own idea of the owner).
2. ``bucket = jump(key, N)``: Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory,
   Consistent Hash Algorithm", 2014). A re-shard from N to N+1 daemons moves only ~1/(N+1) of the
   sensors (all of them to the new daemon); modulo hashing would move ~N/(N+1).
3. Daemon ``I`` of ``N`` (``shard = "I/N"``) owns a sensor when ``bucket == I``.

Pure: no IO, no config import; the daemon builds ``ShardRule`` from its config (``shard``
is parsed there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

_MASK64 = (1 << 64) - 1
_JUMP_MULTIPLIER = 2862933555777941757  # the 64-bit LCG of the paper


def sensor_key(sensor_id: str) -> int:
    """The sensor id's stable 64-bit key (blake2b of its UTF-8 bytes)."""
    digest = hashlib.blake2b(sensor_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach jump consistent hash: the bucket in ``[0, buckets)`` of a 64-bit key."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        # float division exactly as the paper's C code: (b + 1) * (2^31 / ((key >> 33) + 1))
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(sensor_id: str, count: int) -> int:
    """The shard in ``[0, count)`` that owns ``sensor_id``."""
    return jump_hash(sensor_key(sensor_id), count)


@dataclass(frozen=True)
class ShardRule:
    """Daemon ``index`` of ``count``: ``owns(sensor_id)`` is the intake filter."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"invalid shard {self.index}/{self.count}")

    @property
    def everything(self) -> bool:
        """One shard owns every sensor (no hashing needed)."""
        return self.count == 1

    def owns(self, sensor_id: str) -> bool:
        """Whether this shard owns ``sensor_id``."""
        return self.count == 1 or shard_of(sensor_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
