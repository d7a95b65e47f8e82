"""The CLI contract: every command, under --json, prints JSON on stdout and exits with its documented code.

The test walks the click tree, so a command added without a success and a
failure case here fails :func:`test_every_command_has_a_success_and_a_failure_case`.
Each case runs on a real project (``hitlgate init`` with freshly generated
approver keys, SQLite state) through click's CliRunner. For each run:

* the exit code is the one the case expects;
* stdout is exactly one JSON document;
* a non-zero exit that is an error prints ``{"error": {"code", "message",
  "exit_code"}}`` whose ``exit_code`` is the process's exit code;
* the expected code is documented: in the command's own ``--help`` (its
  "Exit code" text) or, for usage errors, the root table (always 2).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.decide._policytest import find_opa
from hitlgate.errors import EXIT_USAGE
from tests._require import missing
from tests.cli_project import Project, make_project
from tests.conftest import make_proposal


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command under ``group``, as its path of names."""
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from leaf_commands(cmd, path)
        else:
            yield path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("contract"))


#: A case builds its arguments (setting up what it needs) and names the exit
#: code it expects; ``usage`` marks a click usage error (documented in the
#: root table for every command) and ``result_doc`` a non-zero exit whose
#: stdout is the command's own result, not an error document.
@dataclass(frozen=True)
class Case:
    build: Callable[[Project], list[str]]
    code: int
    usage: bool = False
    result_doc: bool = False
    env: Callable[[Project], dict[str, str | None]] | None = None


AUTO = make_proposal("rotate_api_key", "dev-analytics-key")
INVALID = {"action": {"type": "rotate_api_key"}}


def _verify_ok(p: Project) -> list[str]:
    rid = p.granted()
    return ["verify", p.file(AUTO["action"]), "--warrant", p.token(rid)]


def _verify_replay(p: Project) -> list[str]:
    args = [*_verify_ok(p), "--consume"]
    assert p.invoke(args).exit_code == 0
    return args


def _outcome_args(p: Project, word: str = "executed") -> list[str]:
    """``outcome`` for a new request whose warrant `verify --consume` just used up."""
    rid = p.granted()
    used = p.invoke(["verify", p.file(AUTO["action"]), "--warrant", p.token(rid), "--consume", "--json"])
    assert used.exit_code == 0, used.output
    return ["outcome", rid, "--jti", json.loads(used.stdout)["jti"], "--outcome", word]


def _outcome_twice(p: Project) -> list[str]:
    args = _outcome_args(p)
    assert p.invoke(args).exit_code == 0
    return args


def _revoked(p: Project) -> list[str]:
    rid = p.pending()
    args = ["revoke", rid, "--as", "alice", "--key", str(p.keys["alice"])]
    assert p.invoke(args).exit_code == 0
    return args


def _existing(p: Project, name: str) -> str:
    path = p.fresh(name)
    path.write_text("keep me\n")
    return str(path)


def _symlink(p: Project, name: str) -> str:
    target = p.fresh("target")
    target.write_text("keep me\n")
    link = p.fresh(name)
    link.symlink_to(target)
    return str(link)


def _anchor_lost(p: Project) -> list[str]:
    own = make_project(p.fresh("anchor-project"))
    own.granted()
    assert own.invoke(["audit", "checkpoint"]).exit_code == 0
    (own.root / "keys" / "audit-anchor.jsonl").unlink()
    return ["--config", str(own.config), "audit", "anchor", "--reinit", "--reason", "disk replaced"]


def _keyring_lost(p: Project) -> list[str]:
    own = make_project(p.fresh("keyring-project"))
    own.granted()
    shutil.rmtree(own.root / "keys")
    return ["--config", str(own.config), "keys", "reinit", "--reason", "disk died, no backup"]


def _checkpoint(p: Project) -> list[str]:
    # A checkpoint signs the audit chain with the keyring: both exist once a request was made (this case
    # can be the module's first test on its xdist worker).
    p.granted()
    return ["audit", "checkpoint"]


def _keyring_present(p: Project) -> list[str]:
    # The shared project's keyring is made by its first warrant; under xdist this case can be the
    # module's first test on its worker, where "keys reinit" on no keyring at all would succeed.
    p.granted()
    assert (p.root / "keys").is_dir()
    return ["keys", "reinit", "--reason", "the keyring is still there"]


def _failing_scenario(p: Project) -> list[str]:
    own = make_project(p.fresh("scenario-project"))
    seed = own.root / "policies" / "scenarios" / "seed.yaml"
    seed.write_text(seed.read_text().replace("want_tier: dual_approval", "want_tier: auto_allow", 1))
    return ["--config", str(own.config), "policy", "test", "--no-rego-tests"]


def _failing_scenario_check(p: Project) -> list[str]:
    return [*_failing_scenario(p)[:-3], "policy", "check"]


def _unformatted(p: Project) -> list[str]:
    own = make_project(p.fresh("fmt-project"))
    (own.root / "policies" / "extra.rego").write_text('package hitlgate\nextra_note:="x"\n')
    return ["--config", str(own.config), "policy", "fmt", "--check"]


def _opa_cache(p: Project) -> dict[str, str | None]:
    from hitlgate.engine.decide._opabin import OPA_VERSION

    opa = find_opa()
    if opa is None:
        missing("OPA", "run scripts/install-opa (or hitlgate opa install) to put one in the cache")
    cache = p.fresh("cache")
    bindir = cache / "opa" / OPA_VERSION / "bin"
    bindir.mkdir(parents=True)
    (bindir / "opa").symlink_to(opa.resolve())
    return {"HITLGATE_CACHE": str(cache), "PATH": str(p.tmp / "nowhere")}


def _no_go(p: Project) -> dict[str, str | None]:
    return {"HITLGATE_CACHE": str(p.fresh("empty-cache")), "PATH": str(p.tmp / "nowhere")}


def _inventory_put(p: Project, name: str) -> list[str]:
    args = ["inventory", "put", "teams", name, "--record", '{"name": "A team"}']
    assert p.invoke(args).exit_code == 0
    return args


def _inventory_referenced_team(p: Project) -> list[str]:
    team = _inventory_put(p, "t-ref")[3]
    record = '{"kind": "api_key", "environment": "staging", "owner": "t-ref", "privilege": "low", "used_by": []}'
    assert p.invoke(["inventory", "put", "identities", "k-ref", "--record", record]).exit_code == 0
    return ["inventory", "delete", "teams", team]


def _apikey_to_revoke(p: Project) -> list[str]:
    assert p.invoke(["apikey", "create", "contract-revoked", "--role", "viewer"]).exit_code == 0
    return ["apikey", "revoke", "contract-revoked"]


def _dead_notification(p: Project) -> list[str]:
    """A notification to a receiver that refuses connections, dead after one attempt; the config is put back."""
    import yaml

    original = p.config.read_text()
    config = yaml.safe_load(original)
    config["notifications"] = {
        "channels": [{"name": "hook", "type": "webhook",
                      "settings": {"url": "http://127.0.0.1:9/hook", "secret_env": "HITLGATE_CONTRACT_SECRET"}}],
        "routes": [{"channels": ["hook"]}], "max_attempts": 1,
    }
    p.config.write_text(yaml.safe_dump(config))
    try:
        p.pending()
        tick = p.invoke(["tick", "--json"], env={"HITLGATE_CONTRACT_SECRET": "whsec_QUFBQUFBQUFBQUFBQUFBQQ=="})
        assert tick.exit_code == 0, tick.output
        dead = json.loads(p.invoke(["notifications", "list", "--status", "dead", "--json"]).stdout)
    finally:
        p.config.write_text(original)
    return ["notifications", "retry", str(dead[0]["id"])]


def _console_config(p: Project) -> str:
    """A copy of the project's config with server.public_url (passkeys need it), beside the original."""
    path = p.root / "hitlgate-console.yaml"
    if not path.exists():
        path.write_text(p.config.read_text() + "\nserver:\n  public_url: http://localhost:8080\n")
    return str(path)


def _passkey_to_revoke(p: Project) -> list[str]:
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.config import load_config
    from tests._authenticator import SoftAuthenticator

    with Engine.from_config(load_config(_console_config(p))) as engine:
        _enrolment, token = engine.passkeys.create_enrolment("grace")
        auth = SoftAuthenticator(origin="http://localhost:8080", rp_id="localhost")
        engine.passkeys.enrol(token, auth.create(engine.passkeys.registration_options(token)))
    return ["approvers", "revoke", "grace"]


SUCCESS: dict[tuple[str, ...], Case] = {
    ("apikey", "create"): Case(lambda p: ["apikey", "create", "contract-agent", "--role", "agent"], 0),
    ("apikey", "list"): Case(lambda p: ["apikey", "list"], 0),
    ("apikey", "revoke"): Case(_apikey_to_revoke, 0),
    ("approvers", "enroll"): Case(lambda p: ["--config", _console_config(p), "approvers", "enroll", "alice"], 0),
    ("approvers", "keys"): Case(lambda p: ["approvers", "keys"], 0),
    ("approvers", "passkeys"): Case(lambda p: ["approvers", "passkeys"], 0),
    ("approvers", "revoke"): Case(_passkey_to_revoke, 0),
    ("approve",): Case(lambda p: p.approve_args("approve", p.pending()), 0),
    ("audit", "anchor"): Case(_anchor_lost, 0),
    ("audit", "checkpoint"): Case(_checkpoint, 0),
    ("audit", "export"): Case(lambda p: ["audit", "export", "--out", str(p.fresh("audit.jsonl"))], 0),
    ("audit", "verify"): Case(lambda p: ["audit", "verify"], 0),
    ("decide",): Case(lambda p: ["decide", p.file(AUTO)], 0),
    ("demo",): Case(lambda p: ["demo", "--decisions-only"], 0),
    ("doctor",): Case(lambda p: ["doctor"], 0),
    ("expire",): Case(lambda p: ["expire"], 0),
    ("init",): Case(lambda p: ["init", str(p.fresh("new-project"))], 0),
    ("notifications", "list"): Case(lambda p: ["notifications", "list"], 0),
    ("notifications", "retry"): Case(_dead_notification, 0),
    ("notifications", "show"): Case(lambda p: ["notifications", "show", _dead_notification(p)[2]], 0),
    ("inventory", "delete"): Case(lambda p: ["inventory", "delete", "teams", _inventory_put(p, "t-del")[3]], 0),
    ("inventory", "import"): Case(lambda p: ["inventory", "import", str(p.root / "policies" / "data")], 0),
    ("inventory", "put"): Case(lambda p: ["inventory", "put", "protected", "svc-ci-runner"], 0),
    ("inventory", "show"): Case(lambda p: ["inventory", "show", "teams", _inventory_put(p, "t-show")[3]], 0),
    ("inventory", "status"): Case(lambda p: ["inventory", "status"], 0),
    ("keys", "generate"): Case(lambda p: ["keys", "generate", "--out", str(p.fresh("sub") / "dir" / "k.pem")], 0),
    ("keys", "jwks"): Case(lambda p: ["keys", "jwks"], 0),
    ("keys", "reinit"): Case(_keyring_lost, 0),
    ("keys", "rotate"): Case(lambda p: ["keys", "rotate"], 0),
    ("opa", "install"): Case(lambda p: ["opa", "install"], 0, env=_opa_cache),
    ("policy", "bundle"): Case(lambda p: ["policy", "bundle", "--out", str(p.fresh("bundle.tar.gz"))], 0),
    ("policy", "test"): Case(lambda p: ["policy", "test", "--no-rego-tests"], 0),
    ("policy", "check"): Case(lambda p: ["policy", "check"], 0),
    ("policy", "fmt"): Case(lambda p: ["policy", "fmt", "--check"], 0),
    ("outcome",): Case(lambda p: [*_outcome_args(p, "failed"), "--detail", "upstream answered 503"], 0),
    ("propose",): Case(lambda p: ["propose", p.file(AUTO)], 0),
    ("reject",): Case(lambda p: p.approve_args("reject", p.pending()), 0),
    ("requests",): Case(lambda p: ["requests", "--limit", "5"], 0),
    ("revoke",): Case(lambda p: ["revoke", p.pending(), "--as", "alice", "--key", str(p.keys["alice"])], 0),
    ("schema",): Case(lambda p: ["schema", "proposal"], 0),
    ("serve",): Case(lambda p: ["serve", "--openapi"], 0),
    ("show",): Case(lambda p: ["show", p.granted(), "--events"], 0),
    ("tick",): Case(lambda p: ["tick"], 0),
    ("verify",): Case(_verify_ok, 0),
    ("wait",): Case(lambda p: ["wait", p.granted(), "--timeout", "0"], 0),
    ("warrant",): Case(lambda p: ["warrant", p.granted(), "--out", str(p.fresh("w.jws"))], 0),
}

FAILURE: dict[tuple[str, ...], Case] = {
    ("apikey", "create"): Case(lambda p: ["apikey", "create", "not a name", "--role", "agent"], 2),
    ("apikey", "list"): Case(lambda p: ["apikey", "list", "--nope"], 2, usage=True),
    ("apikey", "revoke"): Case(lambda p: ["apikey", "revoke", "no-such-key"], 2),
    # The project sets no server.public_url: a link would point nowhere.
    ("approvers", "enroll"): Case(lambda p: ["approvers", "enroll", "alice"], 2),
    ("approvers", "keys"): Case(lambda p: ["approvers", "keys", "--nope"], 2, usage=True),
    ("approvers", "passkeys"): Case(lambda p: ["approvers", "passkeys", "--nope"], 2, usage=True),
    ("approvers", "revoke"): Case(lambda p: ["approvers", "revoke", "no-such-passkey"], 2),
    ("approve",): Case(lambda p: p.approve_args("approve", p.granted()), 3),
    ("audit", "anchor"): Case(lambda p: ["audit", "anchor"], 2),
    ("audit", "checkpoint"): Case(lambda p: ["audit", "checkpoint", "--nope"], 2, usage=True),
    ("audit", "export"): Case(lambda p: ["audit", "export", "--out", _existing(p, "audit.jsonl")], 2),
    ("audit", "verify"): Case(lambda p: ["audit", "verify", "--file", str(p.fresh("missing.jsonl"))], 2),
    ("decide",): Case(lambda p: ["decide", p.file(INVALID)], 2),
    ("demo",): Case(lambda p: ["demo", "--nope"], 2, usage=True),
    ("doctor",): Case(lambda p: ["doctor", "--opa-url", "http://127.0.0.1:9"], 1, result_doc=True),
    ("expire",): Case(lambda p: ["expire", "--nope"], 2, usage=True),
    ("init",): Case(lambda p: ["init", str(p.root)], 2),
    ("notifications", "list"): Case(lambda p: ["notifications", "list", "--status", "nope"], 2, usage=True),
    ("notifications", "retry"): Case(lambda p: ["notifications", "retry", "999999"], 2),
    ("notifications", "show"): Case(lambda p: ["notifications", "show", "999999"], 2),
    ("inventory", "delete"): Case(lambda p: ["inventory", "delete", "teams", "no-such-team"], 2),
    ("inventory", "import"): Case(lambda p: ["inventory", "import", str(p.fresh("missing.yaml"))], 2),
    ("inventory", "put"): Case(lambda p: ["inventory", "put", "teams", "t-bad", "--record", '{"name": 5}'], 2),
    ("inventory", "show"): Case(lambda p: ["inventory", "show", "teams", "no-such-team"], 2),
    ("inventory", "status"): Case(lambda p: ["inventory", "status", "--nope"], 2, usage=True),
    ("keys", "generate"): Case(lambda p: ["keys", "generate", "--out", _existing(p, "k.pem")], 2),
    ("keys", "jwks"): Case(lambda p: ["keys", "jwks", "--nope"], 2, usage=True),
    ("keys", "reinit"): Case(_keyring_present, 2),
    ("keys", "rotate"): Case(lambda p: ["keys", "rotate", "--nope"], 2, usage=True),
    ("opa", "install"): Case(lambda p: ["opa", "install"], 1, env=_no_go),
    ("policy", "bundle"): Case(lambda p: ["policy", "bundle", "--out", _symlink(p, "bundle.tar.gz")], 2),
    ("policy", "test"): Case(_failing_scenario, 3, result_doc=True),
    ("policy", "check"): Case(_failing_scenario_check, 1, result_doc=True),
    ("policy", "fmt"): Case(_unformatted, 1, result_doc=True),
    ("outcome",): Case(_outcome_twice, 3),
    ("propose",): Case(lambda p: ["propose", p.file(INVALID)], 2),
    ("reject",): Case(lambda p: p.approve_args("reject", p.granted()), 3),
    ("requests",): Case(lambda p: ["requests", "--limit", "0"], 2, usage=True),
    ("revoke",): Case(_revoked, 3),
    ("schema",): Case(lambda p: ["schema", "nope"], 2, usage=True),
    ("serve",): Case(lambda p: ["serve", "--workers", "0"], 2, usage=True),
    ("show",): Case(lambda p: ["show", "req-nope"], 2),
    ("tick",): Case(lambda p: ["tick", "--nope"], 2, usage=True),
    ("verify",): Case(_verify_replay, 3),
    ("wait",): Case(lambda p: ["wait", p.pending(), "--timeout", "0"], 4, result_doc=True),
    ("warrant",): Case(lambda p: ["warrant", p.pending()], 4),
}

#: More failures a new user met, each with the error code it must carry.
#: Their exit codes must be documented in the command's --help like the rest.
MORE_FAILURES: dict[str, tuple[tuple[str, ...], Case, str]] = {
    "policy check --base outside a git repository": (
        ("policy", "check"), Case(lambda p: ["policy", "check", "--base", "main"], 2), "not_a_git_repository",
    ),
    "show unknown id": (("show",), Case(lambda p: ["show", "req-nope"], 2), "not_found"),
    "outcome unknown id": (
        ("outcome",), Case(lambda p: ["outcome", "req-nope", "--jti", "j", "--outcome", "executed"], 2), "not_found",
    ),
    "warrant unknown id": (("warrant",), Case(lambda p: ["warrant", "req-nope"], 2), "not_found"),
    "approve unknown id": (("approve",), Case(lambda p: p.approve_args("approve", "req-nope"), 2), "not_found"),
    "reject unknown id": (("reject",), Case(lambda p: p.approve_args("reject", "req-nope"), 2), "not_found"),
    "wait unknown id": (("wait",), Case(lambda p: ["wait", "req-nope", "--timeout", "0"], 2), "not_found"),
    "revoke unknown id": (
        ("revoke",), Case(lambda p: ["revoke", "req-nope", "--as", "alice", "--key", str(p.keys["alice"])], 2),
        "not_found",
    ),
    "inventory delete of a referenced team": (
        ("inventory", "delete"), Case(_inventory_referenced_team, 2), "dangling_reference",
    ),
    "warrant --out exists": (
        ("warrant",), Case(lambda p: ["warrant", p.granted(), "--out", _existing(p, "w.jws")], 2), "file_exists"
    ),
    "verify --consume twice": (("verify",), Case(_verify_replay, 3), "replay"),
    "audit verify of a broken export": (
        ("audit", "verify"), Case(lambda p: ["audit", "verify", "--file", p.file({"not": "an export"})], 3), "",
    ),
}

_HELP = re.compile(r"Exit\s+codes?\b(.*)", re.S)


def documented_codes(path: tuple[str, ...]) -> set[int]:
    """The exit codes a command's --help names after "Exit code(s)"."""
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    m = _HELP.search(result.stdout)
    assert m, f"hitlgate {' '.join(path)} --help documents no exit code"
    text = m.group(1).split("Options:")[0]
    return {int(c) for c in re.findall(r"(?<![\w.:/-])([0-5])(?![\w:/-]|\.\d)", text)}


def test_every_command_has_a_success_and_a_failure_case() -> None:
    commands = set(leaf_commands(cli))
    assert set(SUCCESS) == commands, f"success cases missing for {commands - set(SUCCESS)}"
    assert set(FAILURE) == commands, f"failure cases missing for {commands - set(FAILURE)}"


def _check(project: Project, path: tuple[str, ...], case: Case, *, global_flag: bool) -> None:
    args = case.build(project)
    env = case.env(project) if case.env else None
    # The per-command flag on success, the global one on failure: both must work.
    argv = ["--json", *args] if global_flag else [*args, "--json"]
    result = project.invoke(argv, env=env)
    where = f"hitlgate {' '.join(argv)}"
    assert result.exit_code == case.code, f"{where}: exit {result.exit_code}\n{result.output}"
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{where}: stdout is not one JSON document ({exc}):\n{result.stdout}")
    if case.code != 0 and not case.result_doc:
        error = doc["error"]
        assert error["exit_code"] == case.code
        assert error["code"] and error["message"], doc
    if case.usage:
        assert case.code == EXIT_USAGE
    else:
        assert case.code in documented_codes(path), f"{where}: exit {case.code} is not in its --help"


#: Commands whose cases run the real OPA binary (opa check, opa test, an OPA server): marked opa, so a
#: run without OPA (pytest -m "not opa", the mutation runs) leaves them out.
NEEDS_OPA = {("policy", "check"), ("policy", "fmt")}


def _cases(paths: list[tuple[str, ...]]) -> list[Any]:
    return [pytest.param(p, marks=pytest.mark.opa) if p in NEEDS_OPA else p for p in paths]


@pytest.mark.parametrize("path", _cases(sorted(SUCCESS)), ids=" ".join)
def test_success_path_prints_json_and_exits_as_documented(project: Project, path: tuple[str, ...]) -> None:
    _check(project, path, SUCCESS[path], global_flag=False)


@pytest.mark.parametrize("path", _cases(sorted(FAILURE)), ids=" ".join)
def test_failure_prints_json_and_exits_as_documented(project: Project, path: tuple[str, ...]) -> None:
    _check(project, path, FAILURE[path], global_flag=True)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.opa) if MORE_FAILURES[n][0] in NEEDS_OPA else n for n in sorted(MORE_FAILURES)],
)
def test_more_failures_carry_their_code_and_are_documented(project: Project, name: str) -> None:
    path, case, code = MORE_FAILURES[name]
    _check(project, path, case, global_flag=True)
    if code:
        result = project.invoke(["--json", *case.build(project)])
        assert json.loads(result.stdout)["error"]["code"] == code, result.stdout


def test_documented_exit_codes_include_every_observed_one() -> None:
    # The union over every case of this module, per command: what a user
    # can meet must be in that command's --help (usage errors: the root table).
    observed: dict[tuple[str, ...], set[int]] = {}
    cases = [*SUCCESS.items(), *FAILURE.items(), *((p, c) for p, c, _ in MORE_FAILURES.values())]
    for path, case in cases:
        if not case.usage:
            observed.setdefault(path, set()).add(case.code)
    for path, codes in sorted(observed.items()):
        missing = codes - documented_codes(path)
        assert not missing, f"hitlgate {' '.join(path)} --help does not list exit code(s) {sorted(missing)}"


def test_without_json_an_error_is_one_line_on_stderr_and_stdout_stays_empty(project: Project) -> None:
    result = project.invoke(["show", "req-nope"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_usage_errors_exit_2_and_are_json_under_json(project: Project) -> None:
    for argv in (["--json", "decide"], ["--json", "nosuch"], ["requests", "--json", "--limit", "x"]):
        result = project.invoke(argv)
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout)["error"]
        assert error["exit_code"] == 2 and error["code"] in ("missing_parameter", "usage_error", "bad_parameter")
    plain = project.invoke(["decide"])
    assert plain.exit_code == 2 and "Missing argument 'PROPOSAL.json'" in plain.stderr


@pytest.mark.parametrize(
    ("argv", "first", "hint"),
    [
        (["decide"], "error: Missing argument 'PROPOSAL.json'.", "(see 'hitlgate decide --help')"),
        (["decide", "--nope"], "error: No such option '--nope'.", "(see 'hitlgate decide --help')"),
        (["nosuch"], "error: No such command 'nosuch'.", "(see 'hitlgate --help')"),
        (["keys", "generate"], "error: Missing option '--out'.", "(see 'hitlgate keys generate --help')"),
        (["requests", "--limit", "x"],
         "error: Invalid value for '--limit': 'x' is not a whole number from 1 to 100000.",
         "(see 'hitlgate requests --help')"),
    ],
)
def test_a_usage_error_is_one_error_line_and_a_help_hint(
    project: Project, argv: list[str], first: str, hint: str
) -> None:
    # Not click's three lines (Usage / Try / Error): the README promises one error line.
    result = project.invoke(argv)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [first, hint]


def test_keys_generate_over_an_existing_file_names_no_force_option(project: Project) -> None:
    # keys generate has no --force: the refusal must not advertise one.
    existing = _existing(project, "k.pem")
    result = project.invoke(["keys", "generate", "--out", existing])
    assert result.exit_code == 2
    assert "--force" not in result.stderr
    assert result.stderr == (
        f"error: refusing to overwrite key file {existing} (keys are never overwritten: choose another path, "
        "or delete the old key deliberately first)\n"
    )


def test_every_force_hint_is_for_a_command_that_has_force() -> None:
    # Any command whose --help or refusal says "use --force" must accept --force.
    for path in leaf_commands(cli):
        cmd: click.Command = cli
        for name in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        text = CliRunner().invoke(cli, [*path, "--help"]).stdout
        has_force = any("--force" in p.opts for p in cmd.params if isinstance(p, click.Option))
        if "use --force" in text:
            assert has_force, f"hitlgate {' '.join(path)} --help says 'use --force' but has no --force"


def test_warrant_out_never_prints_the_token(project: Project) -> None:
    rid = project.granted()
    out = project.fresh("w.jws")
    as_json = project.invoke(["--json", "warrant", rid, "--out", str(out)])
    assert as_json.exit_code == 0, as_json.output
    token = out.read_text().strip()
    assert token.count(".") == 2
    doc = json.loads(as_json.stdout)
    assert "token" not in doc and token not in as_json.output
    assert doc["out"] == str(out) and doc["mode"] == "0600" and doc["jti"] and doc["expires_at"]
    plain = project.invoke(["warrant", rid, "--out", str(project.fresh("w2.jws"))])
    assert plain.exit_code == 0 and token not in plain.output
    assert "written to" in plain.stdout and "mode 0600" in plain.stdout
    # Without --out the token is the output (documented: stdout then carries a secret).
    assert project.invoke(["warrant", rid]).stdout.strip() == token


def test_root_help_lists_the_exit_code_table() -> None:
    text = CliRunner().invoke(cli, ["--help"]).stdout
    for line in ("0  ok / allowed", "2  usage error or invalid input", "5  policy broken"):
        assert line in text


def _groups(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _groups(cmd, (*prefix, name))


def test_help_has_examples_and_no_rest_markup() -> None:
    for path in [*leaf_commands(cli), *_groups(cli)]:
        text = CliRunner().invoke(cli, [*path, "--help"]).stdout
        assert "Example" in text, f"hitlgate {' '.join(path)} --help has no example"
        assert "``" not in text, f"hitlgate {' '.join(path)} --help shows reST markup"


def test_every_help_ends_with_its_examples() -> None:
    # Examples go in the command's epilog, which click prints after Options;
    # an "Examples:" inside the docstring would land above Options.
    for path in [*leaf_commands(cli), *_groups(cli)]:
        text = CliRunner().invoke(cli, [*path, "--help"]).stdout
        sections = [block for block in text.strip().split("\n\n") if block.strip()]
        where = f"hitlgate {' '.join(path)} --help"
        assert sections[-1].strip().startswith("Examples:"), f"{where} does not end with Examples:\n{text}"
        assert text.count("Example") == 1, f"{where} has examples outside its last section"


def test_required_options_are_marked_in_help() -> None:
    for path in leaf_commands(cli):
        cmd: click.Command = cli
        for name in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        options = CliRunner().invoke(cli, [*path, "--help"]).stdout.split("\nOptions:\n", 1)[1]
        for param in cmd.params:
            if isinstance(param, click.Option) and param.required:
                block = options[options.index(param.opts[0]):].split("\n  -")[0]
                assert "[required]" in block, f"hitlgate {' '.join(path)}: {param.opts[0]} is not marked required"


def test_decide_and_propose_help_name_the_schema_command() -> None:
    for cmd in ("decide", "propose"):
        assert "hitlgate schema proposal" in CliRunner().invoke(cli, [cmd, "--help"]).stdout



def test_warrant_refusals_carry_stable_codes(project: Project) -> None:
    rid = project.granted()
    token = project.token(rid)
    other = project.file(make_proposal("rotate_api_key", "svc-payments-key")["action"])
    mismatch = project.invoke(["--json", "verify", other, "--warrant", token])
    assert (mismatch.exit_code, json.loads(mismatch.stdout)["error"]["code"]) == (3, "digest_mismatch")
    replay = project.invoke(["--json", *_verify_replay(project)])
    assert (replay.exit_code, json.loads(replay.stdout)["error"]["code"]) == (3, "replay")
    pending = project.invoke(["--json", "warrant", project.pending()])
    assert (pending.exit_code, json.loads(pending.stdout)["error"]["code"]) == (4, "pending")


def test_a_bug_is_internal_exit_1_with_a_traceback_only_under_verbose() -> None:
    @click.command("boom-for-test")
    def boom() -> None:
        raise RuntimeError("a bug")

    cli.add_command(boom)
    try:
        as_json = CliRunner().invoke(cli, ["--json", "boom-for-test"])
        plain = CliRunner().invoke(cli, ["boom-for-test"])
        verbose = CliRunner().invoke(cli, ["-v", "boom-for-test"])
    finally:
        del cli.commands["boom-for-test"]
    assert as_json.exit_code == plain.exit_code == verbose.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == {
        "code": "internal", "message": "unexpected RuntimeError: a bug", "exit_code": 1
    }
    assert "Traceback" not in plain.stderr and plain.stderr.startswith("error: unexpected RuntimeError: a bug")
    assert "Traceback (most recent call last)" in verbose.stderr


def test_start_up_imports_neither_the_store_nor_the_version_report() -> None:
    # --version's OPA probe and pack hash, and the workflow's SQLAlchemy,
    # must cost nothing to commands that do not use them (hitlgate decide).
    import subprocess
    import sys

    code = (
        "import sys, hitlgate.cli; "
        "print(sorted(m for m in ('sqlalchemy', 'hitlgate.cli._version') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed argv.
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip() == "[]"
