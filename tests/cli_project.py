"""A real hitlgate project for CLI tests: ``hitlgate init`` with freshly generated approver keys.

Demo keys count only in ``hitlgate demo``, so a test that approves through
the CLI needs a project whose inventory registers real keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from hitlgate.cli import cli
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys._demokeys import EXAMPLE_APPROVERS, demo_approver_key
from hitlgate.engine.keys.keyring import generate_approver_key, public_raw
from tests.conftest import make_proposal


@dataclass
class Project:
    """An initialised project with real (not demo) approver keys."""

    root: Path
    tmp: Path
    keys: dict[str, Path] = field(default_factory=dict)
    counter: int = 0

    @property
    def config(self) -> Path:
        return self.root / "hitlgate.yaml"

    def invoke(self, args: list[str], env: dict[str, str | None] | None = None) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args], env=env, catch_exceptions=False)

    def fresh(self, name: str) -> Path:
        """A path that does not exist yet."""
        self.counter += 1
        return self.tmp / f"{self.counter}-{name}"

    def file(self, doc: Any) -> str:
        path = self.fresh("doc.json")
        path.write_text(json.dumps(doc))
        return str(path)

    def propose(self, action: str, target: str, code: int) -> str:
        result = self.invoke(["propose", "--json", self.file(make_proposal(action, target))])
        assert result.exit_code == code, result.output
        return str(json.loads(result.stdout)["id"])

    def granted(self) -> str:
        """A new auto-allowed request."""
        return self.propose("rotate_api_key", "dev-analytics-key", 0)

    def pending(self) -> str:
        """A new request that needs one approval (role security or team-platform)."""
        return self.propose("suspend_service_account", "svc-ci-runner", 4)

    def token(self, request_id: str) -> str:
        result = self.invoke(["warrant", request_id, "--json"])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.stdout)["token"])

    def approve_args(self, verdict: str, request_id: str, who: str = "carol") -> list[str]:
        return [verdict, request_id, "--as", who, "--key", str(self.keys[who])]


def make_project(tmp: Path) -> Project:
    root = tmp / "proj"
    result = CliRunner().invoke(cli, ["init", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    project = Project(root=root, tmp=tmp)
    inventory = root / "policies" / "data" / "inventory.yaml"
    text = inventory.read_text()
    for name in EXAMPLE_APPROVERS:
        key_file = tmp / "approver-keys" / f"{name}.pem"
        public = generate_approver_key(key_file)
        text = text.replace(encode_public_key(public_raw(demo_approver_key(name).public_key())), public)
        project.keys[name] = key_file
    inventory.write_text(text)
    return project
