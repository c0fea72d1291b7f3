"""Record profiles: how rich the sandbox's records are (``World(profile=...)``, ``--profile``).

``default`` is the contract's fields plus the few undocumented ones ``world.py`` always makes.
``rich`` adds what real CRMs send and what costs a client CPU per record: ``custom_fields``
nested up to three levels with keys and value types that vary per record (some keys
non-ASCII), undocumented fields of varying type (``x_score`` is an int, a float, a string, a
boolean or null), long lists (``x_labels``: 5-40 strings; ``x_history``: 5-30 objects), a
nested address and free text in several scripts (accents, CJK, Arabic, emoji, combining
marks). Every value is plain JSON the stdlib writes and reads back exactly (floats are
rounded to at most 6 decimals, integers stay within int64), so the independent ground truth
(``tests/groundtruth.py``) decodes it like any other record.

Deterministic from the world's seed: each record's extras come from a generator seeded by
``(seed, id)`` (and the update's time for a change), never from the world's own generator,
so a ``default`` world's records are the same whether or not this module exists.
"""

from __future__ import annotations

import random
from typing import Any, Final

__all__ = ["PROFILES", "enrich", "evolve"]

PROFILES: Final = ("default", "rich")

_WORDS: Final = ("alpha", "bravo", "delta", "north", "south", "quarterly", "renewal", "pilot",
                 "upsell", "churn", "inbound", "partner", "legacy", "enterprise", "trial")
_TEXT: Final = ("Zoë's naïve café order", "東京支店の見込み客", "مرحبا بالعالم",
                "launch 🚀 done 🎉", "Ångström — ½ off", "e\u0301tude (combining accent)",
                "Łódź / Kraków", "ＦＵＬＬＷＩＤＴＨ", "tab\tand newline\nin text",
                "quote \" and backslash \\")
_KEYS: Final = ("region", "segment", "score", "budget", "source", "renewal", "notes", "größe",
                "備考", "owner", "tier", "weights", "flags", "contacts", "history", "ratio",
                "sla", "currency", "legacy", "seats")


def enrich(profile: str, seed: int, resource: str, record: dict[str, Any]) -> None:
    """Add the profile's extra fields to a newly generated record (in place)."""
    if profile == "default":
        return
    _check(profile)
    rng = random.Random(f"{seed}:{profile}:{record['id']}")
    record["custom_fields"] = _custom_fields(rng)
    record["x_score"] = _varying(rng)
    record["x_rank"] = _between(rng, -(2**40), 2**40)
    record["x_ratio"] = round(rng.uniform(-1000, 1000), _between(rng, 0, 7))
    record["x_note"] = " · ".join(rng.sample(_TEXT, _between(rng, 1, 5)))
    # Long lists drawn from fixed pools: generating each element costs the sandbox more time
    # than the client spends reading it (a rich world at 1x still starts in seconds).
    record["x_labels"] = rng.choices(_LABELS, k=_between(rng, 5, 41))
    record["x_history"] = rng.choices(_EVENTS, k=_between(rng, 5, 31))
    record["x_address"] = {"street": f"{_between(rng, 1, 999)} {rng.choice(_WORDS)} St",
                           "city": rng.choice(("São Paulo", "Zürich", "北京", "Reykjavík", "Oslo")),
                           "geo": {"lat": round(rng.uniform(-90, 90), 6),
                                   "lng": round(rng.uniform(-180, 180), 6)}}
    flags = rng.sample(_WORDS, _between(rng, 0, 7))
    record["x_flags"] = {w: rng.random() < 0.5 for w in flags}


def evolve(profile: str, seed: int, resource: str, record: dict[str, Any], when: int) -> None:
    """Change some extras of an updated record (in place): types may change, lists grow."""
    if profile == "default":
        return
    _check(profile)
    rng = random.Random(f"{seed}:{profile}:{record['id']}:{when}")
    record["x_score"] = _varying(rng)
    history = record.get("x_history")
    if isinstance(history, list):
        record["x_history"] = [*history, rng.choice(_EVENTS)]
    fields = record.get("custom_fields")
    if isinstance(fields, dict):
        fields[rng.choice(_KEYS)] = _value(rng, 1)


def _between(rng: random.Random, lo: int, hi: int | None = None) -> int:
    """An integer in ``[lo, hi)`` (``[0, lo)`` alone): one ``random()`` call, ~4x cheaper than
    ``randrange`` (53 bits are plenty for these ranges); deterministic all the same."""
    if hi is None:
        lo, hi = 0, lo
    return lo + int(rng.random() * (hi - lo))


def _check(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown sandbox profile {profile!r}; choose from {PROFILES}")


def _custom_fields(rng: random.Random) -> dict[str, Any]:
    return {key: _value(rng, 0) for key in rng.sample(_KEYS, _between(rng, 4, 15))}


def _value(rng: random.Random, depth: int) -> Any:
    """A value of a random type; objects and lists nest up to three levels."""
    kind = _between(rng, 8 if depth < 3 else 6)
    if kind < 5:
        return _varying(rng)
    if kind == 5:
        return rng.choice(_TEXT)
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(_between(rng, 0, 7))]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(_between(rng, 1, 5))}


def _varying(rng: random.Random) -> Any:
    kind = _between(rng, 5)
    if kind == 0:
        return _between(rng, -(10**9), 10**9)
    if kind == 1:
        return round(rng.uniform(-1e6, 1e6), _between(rng, 0, 7))
    if kind == 2:
        return rng.choice(_WORDS)
    if kind == 3:
        return rng.random() < 0.5
    return None


def _event(rng: random.Random) -> dict[str, Any]:
    return {"at": f"2025-{_between(rng, 1, 13):02d}-{_between(rng, 1, 29):02d}T"
                  f"{_between(rng, 24):02d}:{_between(rng, 60):02d}:00Z",
            "by": rng.choice(_WORDS), "delta": _between(rng, -500, 500),
            "tags": rng.sample(_WORDS, _between(rng, 0, 4))}


_POOL = random.Random("profiles:pools")
_LABELS: Final = tuple(f"{_POOL.choice(_WORDS)}-{i}" for i in range(1000))
_EVENTS: Final = tuple(_event(_POOL) for _ in range(1024))
