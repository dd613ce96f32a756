"""The shard rule: golden values pin it forever (a drift would send sensors to the wrong daemon)."""

from __future__ import annotations

import pytest

from edge_lstm.stream.shard import ShardRule, jump_hash, sensor_key, shard_of

# Published values of the paper's algorithm (ClickHouse's jumpConsistentHash tests, the
# jump-consistent-hash package's README): our implementation is the same function.
PAPER_VECTORS = [
    (1, 1, 0),
    (42, 57, 43),
    (256, 1024, 520),
    (3735883980, 1, 0),
    (3735883980, 666, 361),
    (16045690984833335023, 255, 237),
]

# Fixed ids -> fixed keys and shards for N = 1, 2, 3, 4, 7, 16. Never regenerate these: a change
# here means every deployed fleet would move its sensors (and lose their state) on upgrade.
GOLDEN = [
    ("sensor-0", 0x79C9CC63E0DCA413, [0, 1, 1, 1, 6, 15]),
    ("sensor-1", 0xCF033D96C9C52A91, [0, 1, 1, 1, 1, 1]),
    ("boiler/7", 0xE82E86B62A18F94C, [0, 0, 0, 0, 0, 14]),
    ("Küche", 0xDA1239DAD478016F, [0, 1, 1, 1, 1, 1]),
    ("", 0xE4A6A0577479B2B4, [0, 0, 2, 2, 5, 5]),
]
COUNTS = (1, 2, 3, 4, 7, 16)


@pytest.mark.parametrize(("key", "buckets", "expected"), PAPER_VECTORS)
def test_jump_hash_matches_the_paper(key: int, buckets: int, expected: int) -> None:
    assert jump_hash(key, buckets) == expected


@pytest.mark.parametrize(("sensor_id", "key", "shards"), GOLDEN)
def test_golden_ids_keep_their_shards(sensor_id: str, key: int, shards: list[int]) -> None:
    assert sensor_key(sensor_id) == key
    assert [shard_of(sensor_id, n) for n in COUNTS] == shards


def test_every_sensor_has_exactly_one_owner() -> None:
    ids = [f"s{i}" for i in range(3000)]
    rules = [ShardRule(i, 3) for i in range(3)]
    owners = [sum(rule.owns(s) for rule in rules) for s in ids]
    assert owners == [1] * len(ids)
    # Balanced: each of the three owns about a third (binomial sd ~26 of 1000).
    shares = [sum(rule.owns(s) for s in ids) for rule in rules]
    assert all(850 < n < 1150 for n in shares), shares


def test_reshard_moves_only_to_the_new_daemon() -> None:
    ids = [f"meter-{i}" for i in range(4000)]
    for n in (1, 2, 3, 5):
        before = [shard_of(s, n) for s in ids]
        after = [shard_of(s, n + 1) for s in ids]
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        # Consistent: a sensor that moves goes to the new daemon, and only ~1/(n+1) move.
        assert all(a == n for _, a in moved)
        expected = len(ids) / (n + 1)
        assert 0.8 * expected < len(moved) < 1.2 * expected, (n, len(moved))


def test_one_shard_owns_everything() -> None:
    rule = ShardRule()
    assert rule.everything and rule.owns("anything") and str(rule) == "0/1"


def test_invalid_rule_and_bucket_count_refused() -> None:
    with pytest.raises(ValueError, match="invalid shard"):
        ShardRule(2, 2)
    with pytest.raises(ValueError, match="buckets must be >= 1"):
        jump_hash(1, 0)
