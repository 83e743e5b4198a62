"""L1: never above its byte budget (property test), LRU order, TTL and per-entry expiry, account eviction."""

from hypothesis import given, settings, strategies as st

from services.cache_gateway.l1_cache import ENTRY_OVERHEAD_BYTES, CachedResponse, L1Cache


class FakeTimer:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


ops = st.lists(st.tuples(
    st.sampled_from(["put", "get", "tick", "evict"]),
    st.integers(min_value=0, max_value=40),        # key / account
    st.integers(min_value=0, max_value=20_000),    # payload size
    st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
), max_size=300)


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(min_value=ENTRY_OVERHEAD_BYTES, max_value=200_000), workload=ops)
def test_never_above_the_byte_budget(budget, workload):
    timer = FakeTimer()
    cache = L1Cache(budget, ttl_s=30, timer=timer)
    for op, k, size, age in workload:
        if op == "put":
            stored = cache.put(("insights", str(k % 5), k), CachedResponse(b"x" * size, 1, str(k % 5), age))
            assert stored == (size + ENTRY_OVERHEAD_BYTES <= budget and (age is None or age > 0))
        elif op == "get":
            cache.get(("insights", str(k % 5), k))
        elif op == "tick":
            timer.now += size / 1000
        else:
            cache.invalidate_account(str(k % 5))
        assert cache.bytes_used <= budget
        assert cache.bytes_used == sum(len(e.payload) + ENTRY_OVERHEAD_BYTES for e in cache._cache.values())


def test_least_recently_used_goes_first():
    cache = L1Cache(3 * (100 + ENTRY_OVERHEAD_BYTES))
    for k in "abc":
        cache.put(k, CachedResponse(b"x" * 100, 1, "1"))
    cache.get("a")
    cache.put("d", CachedResponse(b"x" * 100, 1, "1"))
    assert cache.get("b") is None and cache.get("a") is not None


def test_entry_expires_at_ttl_or_its_own_max_age_whichever_is_sooner():
    timer = FakeTimer()
    cache = L1Cache(10_000, ttl_s=60, timer=timer)
    cache.put("long", CachedResponse(b"x", 1, "1"))
    cache.put("short", CachedResponse(b"x", 1, "1", max_age_s=5))
    timer.now = 6
    assert cache.get("short") is None and cache.get("long") is not None
    timer.now = 61
    assert cache.get("long") is None


def test_invalidate_only_older_versions_of_the_account():
    cache = L1Cache(10_000)
    cache.put("old", CachedResponse(b"x", 3, "1"))
    cache.put("new", CachedResponse(b"x", 5, "1"))
    cache.put("other", CachedResponse(b"x", 1, "2"))
    assert cache.invalidate_account("1", below_version=5) == 1
    assert cache.get("old") is None and cache.get("new") and cache.get("other")
