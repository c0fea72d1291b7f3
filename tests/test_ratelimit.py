"""The shared rate limiter: close to the allowed rate, few 429s (a simulated API, fake clock)."""

from __future__ import annotations

import math

import pytest

from analytics_client.http.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_limiter() -> tuple[FakeClock, RateLimiter]:
    """A limiter on a fake clock: its waits move the clock instead of sleeping."""
    clock = FakeClock()
    return clock, RateLimiter(clock=clock, sleep=clock.sleep)


def accept(clock: FakeClock, limiter: RateLimiter, requests: int, spacing: float = 0.0) -> None:
    """``requests`` requests the API accepts, ``spacing`` seconds apart."""
    for _ in range(requests):
        limiter.acquire()
        limiter.observe(200, {})
        clock.now += spacing


class TokenBucketAPI:
    """Like the sandbox: R tokens a second, a full bucket allows one second's worth at once."""

    def __init__(self, clock: FakeClock, rate: float) -> None:
        self.clock, self.rate = clock, rate
        self.tokens, self.last = rate, 0.0

    def request(self) -> tuple[int, dict[str, str], float | None]:
        self.tokens = min(self.rate, self.tokens + (self.clock.now - self.last) * self.rate)
        self.last = self.clock.now
        if self.tokens >= 1:
            self.tokens -= 1
            return 200, {}, None
        wait = max(1, math.ceil((1 - self.tokens) / self.rate))
        return 429, {"retry-after": str(wait)}, float(wait)


@pytest.mark.parametrize("rate", [50, 200])
def test_sustains_close_to_the_allowed_rate_with_few_429s(rate: int) -> None:
    """Under a limit of R requests/s a long run sustains >= 95 % of R with under 1 % 429s."""
    clock, limiter = fake_limiter()
    api = TokenBucketAPI(clock, rate)
    ok = refused = 0
    while clock.now < 120:
        limiter.acquire()
        clock.now += 0.0005  # the request itself
        status, headers, retry_after = api.request()
        limiter.observe(status, headers, retry_after)
        ok += status == 200
        refused += status == 429
    assert ok / clock.now >= 0.95 * rate
    assert refused / (ok + refused) < 0.01


def test_unlimited_until_the_api_says_otherwise() -> None:
    """Without a 429 or RateLimit headers nobody waits."""
    clock, limiter = fake_limiter()
    accept(clock, limiter, 1000)
    assert clock.now == 0.0 and limiter.rate is None


def test_ratelimit_remaining_zero_pauses_until_the_reset() -> None:
    """RateLimit-Remaining: 0 with a reset pauses the next request before any 429."""
    clock, limiter = fake_limiter()
    limiter.acquire()
    limiter.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": "3"})
    limiter.acquire()
    assert clock.now == pytest.approx(3.0)


def test_a_long_retry_after_pauses_every_request() -> None:
    """After a 429 with Retry-After 2 the next request of any resource waits 2 s."""
    clock, limiter = fake_limiter()
    limiter.acquire()
    limiter.observe(429, {"retry-after": "2"}, 2.0)
    limiter.acquire()
    assert clock.now >= 2.0 and limiter.limited == 1


def test_a_short_retry_after_paces_the_others_without_stopping_them() -> None:
    """A 1 s refusal (a token bucket short of one token) sets the pace; nobody idles a second."""
    clock, limiter = fake_limiter()
    accept(clock, limiter, 100, spacing=0.01)  # 100 accepted in the last second
    limiter.observe(429, {"retry-after": "1"}, 1.0)
    before = clock.now
    limiter.acquire()
    limiter.acquire()
    assert clock.now - before < 0.05
    assert limiter.rate == pytest.approx(97, rel=0.02)


def test_refusals_despite_the_pace_pause_everyone() -> None:
    """A new 429 soon after the pace was set means the limit is lower: everyone waits it out."""
    clock, limiter = fake_limiter()
    limiter.acquire()
    limiter.observe(200, {})
    limiter.observe(429, {"retry-after": "1"}, 1.0)
    clock.now += 2.5  # past the first refusal's episode
    limiter.observe(429, {"retry-after": "1"}, 1.0)
    before = clock.now
    limiter.acquire()
    assert clock.now - before >= 1.0 and limiter.limited == 2


def test_a_burst_of_429s_from_requests_in_flight_counts_once() -> None:
    """Five requests refused together set the pace once; it does not collapse."""
    clock, limiter = fake_limiter()
    accept(clock, limiter, 60, spacing=0.01)
    for _ in range(5):
        limiter.observe(429, {"retry-after": "1"}, 1.0)
    assert limiter.rate is not None and limiter.rate > 50
