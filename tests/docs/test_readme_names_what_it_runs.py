"""What a new reader meets first says what it is, without the project's internal jargon.

``hitlgate demo --help`` and the README named the demo's content "the seed's
five situations", a word from the project's own history; they must name the
five situations instead. The README must also point at the benchmark runner
(``python -m bench``) and its report.
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.cli._demo import SEED_SITUATIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_demo_help_names_the_five_situations_not_the_seed() -> None:
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split()).lower()
    assert "seed" not in text
    for keyword in ("suspend", "rotate", "isolate", "partner", "staging"):
        assert keyword in text, keyword
    assert len(SEED_SITUATIONS) == len(re.findall(r"^\s+\d\. ", result.stdout, re.M)) == 5


def test_readme_names_the_demo_situations_and_the_benchmarks() -> None:
    text = README.read_text(encoding="utf-8")
    assert "the seed's" not in text
    intro = text[: text.index("**hitlgate** is")]
    for keyword in ("suspend", "rotate", "isolate", "partner", "staging"):
        assert keyword in intro, keyword
    assert "## Benchmarks" in text and "`python -m bench`" in text and "docs/benchmarks.md" in text
    assert "--only" in text and "`service`" in text
