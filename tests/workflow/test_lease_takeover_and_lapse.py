"""Threat: two replicas both believe they hold the lease, or a dead holder keeps it forever.

The lease (hitlgate/engine/ledger/lease.py) on a real SQLite file and a real
PostgreSQL: only one holder at a time; another takes it over only after it
expires; a holder that stalled past its expiry cannot renew it back from the
one who took it; a killed holder's lease lapses by itself; a released lease
is free at once; and many threads racing for a free lease produce exactly
one winner.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from hitlgate.engine.ledger import lease
from hitlgate.engine.ledger.store import Store
from hitlgate.errors import InputError
from tests.workflow._helpers import T0

TTL = timedelta(seconds=30)


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def test_second_holder_is_refused_until_the_lease_expires(store: Store) -> None:
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    assert not lease.acquire(store, "tick", "b", ttl=TTL, now=T0 + timedelta(seconds=29))
    assert lease.current(store, "tick") == lease.LeaseState("tick", "a", T0 + TTL)
    # Expired at exactly its expiry instant: b takes it over.
    assert lease.acquire(store, "tick", "b", ttl=TTL, now=T0 + TTL)
    assert lease.current(store, "tick") == lease.LeaseState("tick", "b", T0 + 2 * TTL)
    assert not lease.acquire(store, "tick", "a", ttl=TTL, now=T0 + TTL)


def test_holder_renews_and_stays_ahead_of_the_other(store: Store) -> None:
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    for i in range(1, 5):
        now = T0 + timedelta(seconds=20 * i)
        assert lease.renew(store, "tick", "a", ttl=TTL, now=now)
        assert not lease.acquire(store, "tick", "b", ttl=TTL, now=now + timedelta(seconds=1))
    assert lease.current(store, "tick").expires_at == T0 + timedelta(seconds=80) + TTL


def test_stalled_holder_cannot_renew_back_a_lease_taken_over(store: Store) -> None:
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    # a stalls (a long GC pause, a suspended VM); its lease expires and b takes it.
    assert lease.acquire(store, "tick", "b", ttl=TTL, now=T0 + timedelta(seconds=31))
    assert not lease.renew(store, "tick", "a", ttl=TTL, now=T0 + timedelta(seconds=32))
    assert lease.current(store, "tick").holder == "b"


def test_expired_lease_is_not_renewed_even_by_its_own_holder(store: Store) -> None:
    # renew() only extends a live lease; the holder must acquire() again (and may lose the race).
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    assert not lease.renew(store, "tick", "a", ttl=TTL, now=T0 + TTL)
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0 + TTL)


def test_killed_holder_lease_lapses_by_itself(store: Store, db_url: str) -> None:
    # The holder's process is gone (its connection pool closed without a
    # release): nothing but the expiry frees the lease, and that does.
    other = Store.open(db_url)
    assert lease.acquire(other, "tick", "dead", ttl=TTL, now=T0)
    other.close()
    assert not lease.acquire(store, "tick", "alive", ttl=TTL, now=T0 + TTL - timedelta(microseconds=1))
    assert lease.acquire(store, "tick", "alive", ttl=TTL, now=T0 + TTL)


def test_release_frees_at_once_and_only_for_the_holder(store: Store) -> None:
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    assert not lease.release(store, "tick", "b")
    assert lease.current(store, "tick").holder == "a"
    assert lease.release(store, "tick", "a")
    assert lease.current(store, "tick") is None
    assert lease.acquire(store, "tick", "b", ttl=TTL, now=T0)


def test_leases_of_different_names_are_independent(store: Store) -> None:
    assert lease.acquire(store, "tick", "a", ttl=TTL, now=T0)
    assert lease.acquire(store, "notify", "b", ttl=TTL, now=T0)


def test_racing_threads_for_a_free_lease_make_one_winner(store: Store) -> None:
    # Several rounds of 8 threads on their own connections, each round on a lease that just expired.
    for round_ in range(4):
        now = T0 + round_ * TTL
        barrier = threading.Barrier(8, timeout=60)
        wins: list[str] = []

        def contend(name: str, at=now, barrier=barrier, wins=wins) -> None:
            barrier.wait()
            if lease.acquire(store, "tick", name, ttl=TTL, now=at):
                wins.append(name)

        threads = [threading.Thread(target=contend, args=(f"r{round_}-{i}",), daemon=True) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not any(th.is_alive() for th in threads), "a contender hung"
        assert len(wins) == 1, wins
        assert lease.current(store, "tick").holder == wins[0]


@pytest.mark.parametrize(
    ("name", "holder", "ttl", "problem"),
    [
        ("", "a", TTL, "a lease name must be 1 to 100 characters"),
        ("tick", "x" * 201, TTL, "a lease holder must be 1 to 200 characters"),
        ("tick", "a", timedelta(0), "a lease lasts 1 to 3600 seconds, not 0"),
        ("tick", "a", timedelta(hours=2), "a lease lasts 1 to 3600 seconds, not 7200"),
    ],
)
def test_bad_lease_arguments_are_refused(store: Store, name: str, holder: str, ttl: timedelta, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        lease.acquire(store, name, holder, ttl=ttl, now=T0)
