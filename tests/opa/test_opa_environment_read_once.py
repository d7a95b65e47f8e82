"""Fault: the OPA backend re-reads the proxy environment on every decision.

requests scans the whole process environment for proxy settings on every
request, which cost more than the rest of the client's work per decision.
The backend now reads the environment's proxy, CA bundle and netrc
settings once, when it is built. These tests hold both halves: a proxy set
before the backend is built is still honoured, and one that appears
afterwards changes nothing.
"""

from __future__ import annotations

import dataclasses

import pytest

from hitlgate.engine import BackendConfig, Config, Decider
from tests.conftest import make_proposal
from tests.opa.conftest import OpaServer, free_port


def _decider(url: str) -> Decider:
    config = dataclasses.replace(Config(), backend=BackendConfig(kind="opa", url=url, timeout_ms=2000))
    return Decider.from_config(config)


def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_a_proxy_set_after_start_does_not_reroute_decisions(
    opa_server: OpaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    decider = _decider(opa_server.url)
    try:
        assert decider.decide(make_proposal()).fail_closed is None
        # Nothing listens there: a request sent through this proxy fails.
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        decision = decider.decide(make_proposal())
    finally:
        decider.close()
    assert decision.fail_closed is None, decision.reasons
    assert decision.tier == "dual_approval"


def test_a_proxy_set_before_start_is_still_honoured(opa_server: OpaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    decider = _decider(opa_server.url)
    try:
        decision = decider.decide(make_proposal())
    finally:
        decider.close()
    assert decision.fail_closed is not None
    assert decision.fail_closed["code"] == "backend_unavailable"
    assert "unreachable" in decision.fail_closed["reason"]
