"""Readers for the machine formats of ``policy check``: SARIF checked against its schema, JUnit parsed, annotations."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses the test's own report.
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SCHEMA = Path(__file__).resolve().parent / "assets" / "sarif-schema-2.1.0.json"

ANNOTATION = re.compile(r"^::(?P<level>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<message>.*)$")


@cache
def _validator() -> Draft4Validator:
    return Draft4Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def sarif_results(text: str) -> list[dict[str, Any]]:
    """The results of a SARIF log, after checking it against the SARIF 2.1.0 schema."""
    doc = json.loads(text)
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "SARIF does not match its schema:\n" + "\n".join(
        f"  {'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])
    assert doc["version"] == "2.1.0"
    return list(doc["runs"][0]["results"])


def sarif_places(text: str, rule: str) -> list[tuple[str, int]]:
    """(uri, startLine) of each result of ``rule`` that has a location."""
    out = []
    for r in sarif_results(text):
        if r["ruleId"] == rule and r.get("locations"):
            loc = r["locations"][0]["physicalLocation"]
            out.append((loc["artifactLocation"]["uri"], loc["region"]["startLine"]))
    return out


def junit_failures(text: str) -> dict[str, list[str]]:
    """Test case name -> the text of its failure elements, for the failing cases of a JUnit XML report."""
    root = ET.fromstring(text)  # noqa: S314 - the test's own report.
    assert root.tag == "testsuites"
    out: dict[str, list[str]] = {}
    for case in root.iter("testcase"):
        for failure in case.findall("failure"):
            out.setdefault(case.get("name", ""), []).append(f"{failure.get('message')}\n{failure.text or ''}")
    for suite in root.iter("testsuite"):
        failing = sum(1 for c in suite.iter("testcase") if c.find("failure") is not None)
        assert int(suite.get("failures", "-1")) == failing, suite.attrib
    return out


def _unescape(text: str) -> str:
    # The escapes GitHub's toolkit defines for workflow commands; %25 last, so "%253A" stays "%3A".
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def annotations(text: str) -> list[dict[str, str]]:
    """The workflow commands of ``--format github``, each as level, its properties and the message (unescaped)."""
    out = []
    for line in text.splitlines():
        m = ANNOTATION.match(line)
        if m is None:
            continue
        props = {k: _unescape(v) for k, v in (p.split("=", 1) for p in (m.group("props") or "").split(",") if "=" in p)}
        out.append({"level": m.group("level"), **props, "message": _unescape(m.group("message"))})
    return out
