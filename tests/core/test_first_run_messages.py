"""Messages a new user meets on a first run say what happened and what to do next.

Each case is a place where the output used to leave a new user guessing:
enrolling a passkey without ``server.public_url`` suggested an IP address,
which browsers refuse as a passkey's site; ``approvers passkeys`` with
nothing enrolled printed nothing at all; ``hitlgate --json policy`` (a group
without its sub-command) put the whole help text into the error's message;
``doctor`` said "embedded at in process".
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_project import make_project


def test_enroll_without_public_url_shows_the_setting_with_a_host_name(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = project.invoke(["--json", "approvers", "enroll", "alice"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "public_url_missing"
    assert 'add to hitlgate.yaml: server: {public_url: "https://hitlgate.example.com"}' in error["message"]
    assert '"http://localhost:8080" to try it' in error["message"]
    assert "127.0.0.1" not in error["message"]


def test_passkeys_listing_says_when_nobody_enrolled(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = project.invoke(["approvers", "passkeys"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no passkeys enrolled; `hitlgate approvers enroll NAME` creates an enrolment link\n"
    alice = project.invoke(["approvers", "passkeys", "alice"])
    assert alice.stderr.startswith("no passkeys enrolled for alice; ")
    assert json.loads(project.invoke(["--json", "approvers", "passkeys"]).stdout) == []


def test_a_group_without_its_command_is_a_short_json_error(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for group in ("policy", "notifications", "approvers"):
        result = project.invoke(["--json", group])
        assert result.exit_code == 2, group
        assert json.loads(result.stdout)["error"] == {
            "code": "usage_error", "message": f"missing command (hitlgate {group} --help lists them)", "exit_code": 2,
        }


def test_doctor_names_the_embedded_backend_without_at(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    text = project.invoke(["doctor"]).stdout
    assert f"backend:        embedded in process ({project.config.parent / 'policies'})" in text, text


def test_a_public_url_without_scheme_is_explained_in_words(tmp_path: Path) -> None:
    # `public_url: localhost:8080` used to be refused with the bare regular expression.
    project = make_project(tmp_path)
    project.config.write_text(project.config.read_text() + "\nserver:\n  public_url: localhost:8080\n")
    result = project.invoke(["--json", "doctor"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "config_error"
    assert "server.public_url: 'localhost:8080' is not an origin: http:// or https://, a host name and an " \
        "optional port, no path (e.g. https://hitlgate.example.com or http://localhost:8080)" in error["message"]
    assert "^https?://" not in error["message"]
