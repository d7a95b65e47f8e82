"""Threat: the inventory or policy got stricter after approval; the old warrant must not run."""

from __future__ import annotations

import pytest
import yaml

from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal


def _edit_identity(pack, name, **changes):
    inv = pack / "data" / "inventory.yaml"
    doc = yaml.safe_load(inv.read_text())
    doc["identities"][name].update(changes)
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_auto_allow_warrant_refused_after_target_becomes_production(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("rotate_api_key", "dev-analytics-key")
    req = eng.propose(doc)
    assert req.status == "granted" and req.tier == "auto_allow"
    token = eng.warrant(req.id).token
    _edit_identity(pack_copy, "dev-analytics-key", environment="production")
    ran = []
    with pytest.raises(InvalidWarrant, match="stricter"):
        eng.guard().execute(token, doc["action"], ran.append)
    assert not ran
    assert eng.get(req.id).status == "granted"


def test_single_approval_warrant_refused_after_target_becomes_protected(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(eng, doc, ("carol",))
    inv = pack_copy / "data" / "inventory.yaml"
    data = yaml.safe_load(inv.read_text())
    data["protected"].append("svc-ci-runner")
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InvalidWarrant, match="deny"):
        eng.guard().execute(token, doc["action"], lambda a: None)


def test_unchanged_or_looser_policy_still_runs(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(eng, doc, ("carol",))
    _edit_identity(pack_copy, "svc-ci-runner", environment="staging", privilege="low")
    assert eng.guard().execute(token, doc["action"], lambda a: "ok") == "ok"


def test_broken_policy_fails_closed_at_the_guard(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(eng, doc, ("carol",))
    (pack_copy / "decision.rego").write_text("package hitlgate\n\ndecision := {")
    with pytest.raises(InvalidWarrant, match="deny"):
        eng.guard().execute(token, doc["action"], lambda a: None)
