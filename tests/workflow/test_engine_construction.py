"""What an engine is built with: its checkpoint interval, how long retired keys stay trusted, its clock.

A retired engine key must stay trusted for at least two warrant
lifetimes (and never less than an hour), so a rotation never strands a
warrant issued just before it; a checkpoint interval below one and a
clock that gives local times are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hitlgate.engine import Decider
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.engine.ledger.auditlog import AuditLog
from hitlgate.engine.ledger.store import Store
from hitlgate.engine.limits import Limits
from hitlgate.errors import InputError, ValidationError
from tests.workflow._helpers import proposal


@pytest.mark.parametrize(("warrant_ttl", "grace"), [(300, 3600), (1800, 3600), (1801, 3602), (3600, 7200)])
def test_retired_keys_stay_trusted_for_two_warrant_lifetimes_and_at_least_an_hour(
    make_engine: Callable[..., Engine], warrant_ttl: int, grace: int
) -> None:
    engine = make_engine(config={"warrant_ttl_seconds": warrant_ttl})
    assert engine.keyring.retire_after == timedelta(seconds=grace)


@pytest.mark.parametrize("every", [0, -1])
def test_a_checkpoint_interval_below_one_is_refused(make_engine: Callable[..., Engine], every: int) -> None:
    with pytest.raises(InputError, match="^checkpoint_every must be at least 1$"):
        make_engine(checkpoint_every=every)


def test_a_checkpoint_every_event_is_allowed(make_engine: Callable[..., Engine]) -> None:
    assert make_engine(checkpoint_every=1).audit_log.checkpoint_every == 1


def test_the_engine_clock_must_give_aware_times_and_they_come_back_in_utc(
    make_engine: Callable[..., Engine]
) -> None:
    engine = make_engine()
    local = datetime(2026, 11, 27, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert engine.now(local) == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert engine.now().utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="^" + re.escape("now must be timezone-aware") + "$"):
        engine.now(datetime(2026, 11, 27, 10, 0))  # noqa: DTZ001 - the naive time is what is refused.
    naive_clock = make_engine(clock=lambda: datetime(2026, 11, 27, 10, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="^now must be timezone-aware$"):
        naive_clock.now()


def test_request_ids_are_unguessable_and_of_one_form(make_engine: Callable[..., Engine]) -> None:
    # 96 random bits: an id seen in a ticket does not give the next one (an approval link is not a secret,
    # but a guessable id would let anyone enumerate requests where the API exposes them by id).
    engine = make_engine()
    ids = {engine.propose(proposal("suspend_service_account", "svc-ci-runner", ticket=str(n))).id for n in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"req-[0-9a-f]{24}", rid) for rid in ids), ids


@pytest.mark.parametrize("every", [0, -5])
def test_an_audit_log_refuses_a_checkpoint_interval_below_one_itself(
    make_engine: Callable[..., Engine], every: int
) -> None:
    # The audit log is also made on its own (tools, the service): it checks the interval itself.
    engine = make_engine()
    with pytest.raises(InputError, match="^checkpoint_every must be at least 1$"):
        AuditLog(engine.store, engine.keyring, engine.anchor, checkpoint_every=every)
    assert AuditLog(engine.store, engine.keyring, engine.anchor, checkpoint_every=1).checkpoint_every == 1


def test_an_engine_uses_the_decider_store_keyring_and_anchor_it_is_given(
    make_engine: Callable[..., Engine], bundled_decider: Decider, tmp_path: Path
) -> None:
    # Given ones are used, not replaced by ones opened from the configuration: a service that shares one
    # decider, or a test on its own database and keys, gets exactly that.
    other = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
    keyring = EngineKeyring(tmp_path / "other-keys")
    anchor = AuditAnchor(tmp_path / "other-keys" / "other-anchor.jsonl")
    try:
        engine = make_engine(store=other, keyring=keyring, anchor=anchor)
        assert engine.decider is bundled_decider
        assert engine.store is other
        assert engine.keyring is keyring
        assert engine.anchor is anchor
        request = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        checkpoint = engine.checkpoint()
        with other.read() as tx:
            assert tx.get_request(request.id).id == request.id
        assert anchor.last() == checkpoint
        assert checkpoint.kid == keyring.current_kid
        # Nothing reached the configured database, key directory or anchor.
        assert not (tmp_path / "keys").exists()
        configured = make_engine()
        assert configured.store is not other
        assert configured.list() == []
    finally:
        other.close()


class _OwnBackend:
    """A policy backend of a library user's own, with no ``facts`` (the PolicyBackend protocol asks for none)."""

    name = "own"
    expected_revision = "sha256:" + "0" * 64

    def evaluate(self, input_document: object) -> tuple[None, str]:
        return None, self.expected_revision

    def close(self) -> None:
        pass


def test_an_engine_on_a_backend_without_facts_reads_the_approvers_under_the_configured_limits(
    make_engine: Callable[..., Engine]
) -> None:
    # The approver registry then reads the configured inventory files itself, under the configured limits
    # (not the library's 64 MiB default), and an engine is still made on such a backend.
    engine = make_engine(decider=Decider(_OwnBackend()))  # type: ignore[arg-type]
    assert "alice" in engine.approvers.all()
    tight = make_engine(decider=Decider(_OwnBackend()), config={"limits": Limits(inventory_file_bytes=1024)})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"inventory\.yaml: larger than the limit of 1024 bytes"):
        tight.approvers.all()


def test_the_engines_issuer_signs_for_the_configured_lifetime(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(config={"warrant_ttl_seconds": 900})
    assert engine.issuer.ttl_seconds == 900
    assert (engine.issuer.issuer, engine.issuer.audience) == (engine.config.issuer, engine.config.audience)
