"""Routing: events, tiers and owner teams pick the channels; auto-allow is silent unless a route names it;
a ``notifications:`` section with a mistake is refused at load, naming the field."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.config import Config
from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import DispatchReport, dispatch, enqueue_new
from hitlgate.engine.notify.settings import NotificationSettings, Route
from hitlgate.errors import ConfigError
from tests.notify.conftest import SECRET_ENV
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory


def _channel(name: str) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "settings": {"url": "http://127.0.0.1:9/x", "secret_env": SECRET_ENV}}


ROUTED = {
    "channels": [_channel(n) for n in ("payments", "dual", "everything", "auto")],
    "routes": [
        {"teams": ["team-payments"], "channels": ["payments"]},
        {"tiers": ["dual_approval"], "events": ["request.pending"], "channels": ["dual"]},
        {"channels": ["everything"]},
        {"tiers": ["auto_allow"], "channels": ["auto"]},
    ],
}


def _by_channel(engine: Any) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for row in reversed(outbox.list_rows(engine.store, limit=1000)):
        out[row.channel].append((row.event, row.request_id))
    return dict(out)


def test_events_tiers_and_teams_pick_the_channels(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine(config={"notifications": NotificationSettings.from_dict(ROUTED)})
    dual = engine.propose(proposal())  # dual_approval, owner team-payments
    single = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))  # single_approval, team-platform
    auto = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))  # auto_allow, team-data
    assert (dual.tier, single.tier, auto.tier) == ("dual_approval", "single_approval", "auto_allow")
    vote(engine, single, "carol")
    report = enqueue_new(engine, clock.now)
    assert report.enqueued == 7
    assert _by_channel(engine) == {
        "payments": [("request.pending", dual.id)],
        "dual": [("request.pending", dual.id)],
        "everything": [("request.pending", dual.id), ("request.pending", single.id),
                       ("request.vote", single.id), ("request.granted", single.id)],
        # Only the route that names auto_allow hears of it; the catch-all route does not.
        "auto": [("request.granted", auto.id)],
    }


def test_auto_allow_is_silent_by_default(make_engine: EngineFactory, clock: FakeClock) -> None:
    catch_all = {"channels": [_channel("all")], "routes": [{"channels": ["all"]}]}
    engine = make_engine(config={"notifications": NotificationSettings.from_dict(catch_all)})
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    report = enqueue_new(engine, clock.now)
    assert report.events > 0 and report.enqueued == 0
    assert outbox.list_rows(engine.store) == []


def test_events_older_than_the_age_limit_are_passed_over(make_engine: EngineFactory, clock: FakeClock) -> None:
    settings = NotificationSettings.from_dict({**ROUTED, "max_event_age_seconds": 60})
    engine = make_engine(config={"notifications": settings})
    engine.propose(proposal())
    report = enqueue_new(engine, clock.advance(61))
    assert (report.enqueued, report.skipped_stale) == (0, 1)  # The "decided" event; "proposed" notifies nobody.
    assert enqueue_new(engine, clock.now).events == 0  # The cursor moved past them.


def test_without_routes_the_cursor_moves_and_nothing_is_kept(make_engine: EngineFactory, clock: FakeClock) -> None:
    no_routes = NotificationSettings.from_dict({"channels": ROUTED["channels"]})
    engine = make_engine(config={"notifications": no_routes})
    engine.propose(proposal())
    report = dispatch(engine, clock.now)
    assert report.enqueued == 0 and report.cursor > 0
    # Routed later: the history before is not sent.
    later = make_engine(config={"notifications": NotificationSettings.from_dict(ROUTED)})
    assert enqueue_new(later, clock.now).events == 0


def test_without_notifications_nothing_is_touched(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    engine.propose(proposal())
    assert dispatch(engine, clock.now) == DispatchReport()
    later = make_engine(config={"notifications": NotificationSettings.from_dict(ROUTED)})
    assert enqueue_new(later, clock.now).enqueued == 3  # pending, to payments, dual and everything


def test_route_matching_rules() -> None:
    route = Route(channels=("c",), events=("request.pending",), tiers=("dual_approval",), teams=("team-a",))
    assert route.matches("request.pending", "dual_approval", ("team-a",))
    assert not route.matches("request.vote", "dual_approval", ("team-a",))
    assert not route.matches("request.pending", "single_approval", ("team-a",))
    assert not route.matches("request.pending", "dual_approval", ("team-b",))
    assert not route.matches("request.pending", "dual_approval", ())
    assert not Route(channels=("c",)).matches("request.granted", "auto_allow", ("team-a",))
    assert Route(channels=("c",), tiers=("auto_allow",)).matches("request.granted", "auto_allow", ())


@pytest.mark.parametrize(("section", "message"), [
    ({"channels": [_channel("a")], "routes": [{"channels": ["b"]}]},
     r"notifications.routes\[0\].channels\[0\]: no channel named 'b' \(configured: a\)"),
    ({"channels": [_channel("a")], "routes": [{"channels": ["a"], "events": ["request.approved"]}]},
     r"notifications.routes\[0\].events\[0\]: 'request.approved' is not one of"),
    ({"channels": [_channel("a")], "routes": [{"channels": ["a"], "tiers": ["dual"]}]},
     r"notifications.routes\[0\].tiers\[0\]: 'dual' is not one of"),
    ({"channels": [_channel("a")], "routes": [{"channels": ["a"], "team": ["x"]}]},
     r"notifications.routes\[0\]: unknown key\(s\) team"),
    ({"channels": [{"name": "a", "type": "pager", "settings": {}}]},
     r"notifications.channels\[0\].type: unknown channel type 'pager' \(installed: .*email.*slack.*webhook"),
    ({"channels": [{"name": "a", "type": "webhook", "settings": {"url": "http://x"}}]},
     r"notifications.channels\[0\].settings.secret_env: required"),
    ({"channels": [_channel("a"), _channel("a")]}, r"notifications.channels\[1\].name: 'a' is used by an earlier"),
    ({"channels": [], "max_attempts": 0}, r"notifications.max_attempts: must be an integer from 1 to 100"),
    ({"channels": [{"name": "a", "type": "email", "settings": {"host": "h", "from": "x@y", "to": "soc@y"}}]},
     r"notifications.channels\[0\].settings.to: must be a list of email addresses"),
])
def test_mistakes_are_refused_naming_the_field(section: dict[str, Any], message: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "hitlgate.yaml"
    path.write_text(yaml.safe_dump({"notifications": section}))
    with pytest.raises(ConfigError, match=message):
        Config.from_file(path)


def test_a_valid_section_loads_with_the_public_url(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "hitlgate.yaml"
    path.write_text(yaml.safe_dump({"notifications": ROUTED}))
    config = Config.from_file(path)
    assert config.notifications is not None
    assert [c.name for c in config.notifications.channels] == ["payments", "dual", "everything", "auto"]
