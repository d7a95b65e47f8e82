"""Threat: the executor is asked to run a different action than the one approved."""

from __future__ import annotations

import copy

import pytest

from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal

TAMPERS = {
    "type": lambda a: a.update(type="revoke_secret"),
    "target": lambda a: a.update(target="svc-ledger-token"),
    "parameter value": lambda a: a["parameters"].update(grace_seconds=0),
    "parameter added": lambda a: a["parameters"].update(scope="all"),
    "parameter removed": lambda a: a["parameters"].pop("grace_seconds"),
    "parameter type": lambda a: a["parameters"].update(grace_seconds="60"),
}


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_any_change_to_the_action_is_refused(engine, what):
    doc = proposal("suspend_service_account", "svc-ci-runner", grace_seconds=60)
    req, token = granted_warrant(engine, doc, ("carol",))
    tampered = copy.deepcopy(doc["action"])
    TAMPERS[what](tampered)
    ran = []
    with pytest.raises(InvalidWarrant, match="different action"):
        engine.guard().execute(token, tampered, ran.append)
    assert not ran
    # The refusal consumed nothing: the approved action still runs once.
    engine.guard().execute(token, doc["action"], ran.append)
    assert ran == [doc["action"]]


def test_malformed_action_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(engine, doc, ("carol",))
    with pytest.raises(InvalidWarrant, match="malformed"):
        engine.guard().execute(token, {"type": "suspend_service_account"}, lambda a: None)


def test_decorated_tool_called_with_other_arguments_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner", grace_seconds=60)
    _req, token = granted_warrant(engine, doc, ("carol",))
    calls = []

    @engine.guard().tool("suspend_service_account")
    def suspend(target: str, grace_seconds: int = 0) -> str:
        calls.append((target, grace_seconds))
        return "suspended"

    with pytest.raises(InvalidWarrant, match="bound to a different action"):
        suspend("svc-reporting", grace_seconds=60, warrant=token)
    with pytest.raises(InvalidWarrant, match="bound to a different action"):
        suspend("svc-ci-runner", grace_seconds=1, warrant=token)
    assert calls == []
    assert suspend("svc-ci-runner", grace_seconds=60, warrant=token) == "suspended"


def test_decorated_tool_binds_extra_keywords_into_the_action(engine):
    # A tool that takes **options must put them in the action the warrant
    # covers: an agent adding `force=True` to an approved call is refused.
    doc = proposal("suspend_service_account", "svc-ci-runner", grace_seconds=60)
    _req, token = granted_warrant(engine, doc, ("carol",))
    calls = []

    @engine.guard().tool("suspend_service_account")
    def suspend(target: str, **options: object) -> str:
        calls.append((target, options))
        return "suspended"

    with pytest.raises(InvalidWarrant, match="bound to a different action"):
        suspend("svc-ci-runner", grace_seconds=60, force=True, warrant=token)
    assert calls == []
    assert suspend("svc-ci-runner", grace_seconds=60, warrant=token) == "suspended"


def test_decorated_tool_that_cannot_name_its_target_is_refused_before_anything_runs(engine):
    guard = engine.guard()

    @guard.tool("suspend_service_account")
    def no_target(account: str) -> None:
        raise AssertionError("must not run")

    @guard.tool("suspend_service_account")
    def varargs(target: str, *extra: str) -> None:
        raise AssertionError("must not run")

    with pytest.raises(TypeError, match="^no_target needs a string argument named 'target'$"):
        no_target("svc-ci-runner", warrant="x.y.z")
    with pytest.raises(TypeError, match="^varargs: positional varargs cannot be bound into an action$"):
        varargs("svc-ci-runner", "more", warrant="x.y.z")


def test_decorated_tool_with_its_own_mapping_receives_every_argument(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner", grace_seconds=60)
    _req, token = granted_warrant(engine, doc, ("carol",))
    seen = []

    def to_action(account: str, grace: int) -> dict:
        seen.append((account, grace))
        return {"type": "suspend_service_account", "target": account, "parameters": {"grace_seconds": grace}}

    @engine.guard().tool(to_action=to_action)
    def suspend(account: str, grace: int) -> str:
        return f"suspended {account}"

    assert suspend("svc-ci-runner", grace=60, warrant=token) == "suspended svc-ci-runner"
    assert seen == [("svc-ci-runner", 60)]
