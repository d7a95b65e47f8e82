"""The formats of ``hitlgate policy check``: text, json, markdown, junit, sarif and github.

Every format carries the same facts: each check's outcome, each failure
with its file and line where it has one, and (with ``--base``) each group of
changed decisions with its direction. Markdown is written to be pasted as a
pull-request comment (and appended to ``$GITHUB_STEP_SUMMARY``); JUnit XML
and SARIF 2.1.0 are for CI systems; ``github`` prints workflow commands
(``::error file=...,line=...::message``) that GitHub Actions turns into
annotations on the changed files.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - builds XML, never parses untrusted input.
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hitlgate import __version__
from hitlgate.engine.decide._policycheck import CheckReport, Finding, Step

FORMATS = ("text", "markdown", "json", "junit", "sarif", "github")

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_STATUS_TEXT = {"passed": "ok", "failed": "FAILED", "skipped": "skipped", "note": "note"}
_STATUS_MD = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped", "note": "ℹ️ note"}

#: Examples of proposals shown per change group in text and Markdown (JSON carries all of them).
EXAMPLES = 5


#: C0 and C1 control characters but tab and newline: an escape sequence (ESC ]8;; hyperlinks, colours), a
#: carriage return that hides what precedes it, or a byte XML 1.0 cannot carry.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """``text`` without C0/C1 control characters (tab and newline kept)."""
    return _CONTROL.sub("", text)


def one_line(text: str) -> str:
    """``text`` on one line: newlines and carriage returns escaped, other control characters removed."""
    return strip_controls(str(text).replace("\r", "\\r").replace("\n", "\\n"))


def _clean_doc(value: Any) -> Any:
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, dict):
        return {k: _clean_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_doc(v) for v in value]
    return value


def render(report: CheckReport, fmt: str) -> str:
    """The report in one of :data:`FORMATS`.

    Scenario notes, file names and tool messages are untrusted text: every format but JSON (whose
    escaping carries them exactly) drops their control characters, and text output keeps each finding on
    one line and never starts a line with ``::`` (a GitHub workflow command when a CI log prints it).
    """
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    if fmt == "markdown":
        return strip_controls(markdown(report))
    if fmt == "junit":
        return strip_controls(junit(report))
    if fmt == "sarif":
        return json.dumps(_clean_doc(sarif(report)), indent=2)
    if fmt == "github":
        return strip_controls(github(report))
    return "\n".join(_defuse(line) for line in strip_controls(text(report)).split("\n"))


def _defuse(line: str) -> str:
    """A text line that cannot start a GitHub workflow command (``::error::...``)."""
    stripped = line.lstrip()
    if stripped.startswith("::"):
        return line[: len(line) - len(stripped)] + ": :" + stripped[2:]
    return line


def verdict(report: CheckReport) -> str:
    """One line: the outcome and why."""
    reasons = []
    if report.failed_steps:
        titles = ", ".join(s.title for s in report.failed_steps)
        reasons.append(f"{len(report.failed_steps)} check(s) failed: {titles}")
    diff = report.diff
    if diff is not None and diff.forbidden:
        count = sum(g.count for g in diff.forbidden)
        reasons.append(f"{count} changed decision(s) that --fail-on {diff.fail_on} forbids")
    return "passed" if not reasons else "FAILED: " + "; ".join(reasons)


# -- text -------------------------------------------------------------------------


def _findings(step: Step) -> Iterable[Finding]:
    return step.findings


def text(report: CheckReport) -> str:
    """For people at a terminal."""
    lines = [f"hitlgate policy check: {one_line(report.policy_dir)}"]
    width = max(len(s.title) for s in report.steps) if report.steps else 10
    for s in report.steps:
        lines.append(f"  {_STATUS_TEXT[s.status]:<8}{one_line(s.title):<{width}}  {one_line(s.summary)}".rstrip())
        for f in _findings(s):
            lines.append(f"            {f.level + ': ' if f.level != 'error' else ''}{one_line(str(f))}")
    if report.diff is not None:
        lines.extend(_diff_text(report.diff))
    lines.append(f"result: {verdict(report)}")
    return "\n".join(lines)


def _diff_text(diff: Any) -> list[str]:
    lines = [f"decision diff against {one_line(diff.base_ref)} ({diff.base_commit[:12]}): {one_line(diff.headline())}"]
    for note in diff.notes:
        lines.append(f"  note: {one_line(note)}")
    for g in diff.groups:
        mark = "FORBIDDEN " if g in diff.forbidden else ""
        lines.append(f"  {mark}{g.direction.upper()}: {one_line(g.describe())}")
        for detail in g.details():
            lines.append(f"      {one_line(detail)}")
        for p in g.proposals[:EXAMPLES]:
            lines.append(f"      - {one_line(p.describe())}")
        if g.count > EXAMPLES:
            lines.append(f"      - ... and {g.count - EXAMPLES} more")
    return lines


# -- markdown ---------------------------------------------------------------------


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return one_line(text).replace("\\n", " ").replace("\\r", " ").replace("|", "\\|").replace("<", "&lt;")


def markdown(report: CheckReport) -> str:
    """A pull-request comment."""
    icon = "✅" if report.ok else "❌"
    out = [f"## {icon} hitlgate policy check: {verdict(report)}", "",
           "| check | result | details |", "|---|---|---|"]
    for s in report.steps:
        out.append(f"| {_md(s.title)} | {_STATUS_MD[s.status]} | {_md(s.summary)} |")
    failed = [(s, f) for s in report.steps for f in s.findings if s.status == "failed" and f.level == "error"]
    if failed:
        out += ["", "### Failures", ""]
        for s, f in failed:
            where = f" `{f.where}`" if f.where else ""
            out.append(f"- **{_md(s.title)}**{where}: {_md(f.message)}")
    if report.diff is not None:
        out += ["", *_diff_markdown(report.diff)]
    return "\n".join(out) + "\n"


def _diff_markdown(diff: Any) -> list[str]:
    out = [f"### Decision changes against `{diff.base_ref}` ({diff.base_commit[:12]})", "", diff.headline(), ""]
    for note in diff.notes:
        out.append(f"> {_md(note)}")
    if diff.notes:
        out.append("")
    if not diff.groups:
        return out
    out += ["| | change | base → head | factors | quorum |", "|---|---|---|---|---|"]
    for g in diff.groups:
        icon = {"loosening": "🔓", "tightening": "🔒", "changed": "⚠️", "neutral": "•",
                "new target": "🆕"}[g.direction]
        mark = " **(forbidden)**" if g in diff.forbidden else ""
        out.append(
            f"| {icon} {g.direction}{mark} | {_md(g.describe())} | `{g.base_tier}` → `{g.head_tier}` "
            f"| {_md(g.factor_text() or '-')} | {_md(g.quorum_text() or '-')} |"
        )
    out += ["", "<details><summary>Details and examples</summary>", ""]
    for g in diff.groups:
        out.append(f"**{_md(g.describe())}**")
        out.append("")
        for detail in g.details():
            out.append(f"- {_md(detail)}")
        for p in g.proposals[:EXAMPLES]:
            out.append(f"- {_md(p.describe())}")
        if g.count > EXAMPLES:
            out.append(f"- ... and {g.count - EXAMPLES} more")
        out.append("")
    out.append("</details>")
    return out


# -- junit ------------------------------------------------------------------------


def junit(report: CheckReport) -> str:
    """JUnit XML: one test case per check (and per group of changed decisions)."""
    root = ET.Element("testsuites", name="hitlgate policy check")
    suite = ET.SubElement(root, "testsuite", name="policy checks")
    failures = skipped = 0
    for s in report.steps:
        case = ET.SubElement(suite, "testcase", classname="hitlgate.policy.check", name=s.title,
                             time=f"{s.seconds:.3f}")
        if s.status == "failed":
            failures += 1
            errors = [f for f in s.findings if f.level == "error"] or s.findings
            el = ET.SubElement(case, "failure", message=str(errors[0]) if errors else s.summary, type=s.id)
            el.text = "\n".join(str(f) for f in s.findings)
        elif s.status == "skipped":
            skipped += 1
            ET.SubElement(case, "skipped", message=s.summary)
        elif s.status == "note" or s.findings:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join([s.summary, *(str(f) for f in s.findings)])
    suite.set("tests", str(len(report.steps)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    if report.diff is not None:
        diff = report.diff
        dsuite = ET.SubElement(root, "testsuite", name=f"decision diff against {diff.base_ref}")
        dfail = 0
        cases = diff.groups or [None]
        for g in cases:
            if g is None:
                ET.SubElement(dsuite, "testcase", classname="hitlgate.policy.diff", name="no decision changed")
                continue
            case = ET.SubElement(dsuite, "testcase", classname="hitlgate.policy.diff",
                                 name=f"{g.direction}: {g.describe()}")
            body = "\n".join([*g.details(), *(p.describe() for p in g.proposals)])
            if g in diff.forbidden:
                dfail += 1
                el = ET.SubElement(case, "failure", message=f"{g.direction} forbidden by --fail-on {diff.fail_on}",
                                   type=g.direction)
                el.text = body
            else:
                ET.SubElement(case, "system-out").text = body
        dsuite.set("tests", str(len(cases)))
        dsuite.set("failures", str(dfail))
        dsuite.set("errors", "0")
        dsuite.set("skipped", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- sarif ------------------------------------------------------------------------


def repo_path(file: str, root: str | None) -> str:
    """``file`` (relative to the cwd, or absolute) relative to the repository's top, in ``/`` form.

    GitHub and SARIF consumers resolve paths against the checkout's root, not the directory the check ran
    in; a file outside the repository keeps its own path.
    """
    if root is None:
        return file.replace("\\", "/")
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return Path(os.path.normpath(absolute)).relative_to(root).as_posix()
    except ValueError:
        return file.replace("\\", "/")


def _location(f: Finding, root: str | None = None) -> list[dict[str, Any]]:
    if not f.file:
        return []
    region: dict[str, Any] = {"startLine": max(f.line or 1, 1)}
    if f.line and f.col:
        region["startColumn"] = max(f.col, 1)
    # A URI reference: spaces, %, # and ? in a file name are percent-encoded (RFC 3986), / kept.
    uri = quote(repo_path(f.file, root), safe="/")
    return [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": region}}]


def sarif(report: CheckReport) -> dict[str, Any]:
    """SARIF 2.1.0: one result per failure (with its file and line) and per group of changed decisions."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for s in report.steps:
        rules.setdefault(s.id, {"id": s.id, "name": s.id.replace("-", "_"),
                                "shortDescription": {"text": s.title}})
        if s.status == "note" and not s.findings:
            results.append({"ruleId": s.id, "level": "note", "message": {"text": s.summary}})
        for f in s.findings:
            level = f.level if s.status == "failed" or f.level != "error" else "warning"
            result: dict[str, Any] = {"ruleId": s.id, "level": level, "message": {"text": f.message}}
            locations = _location(f, report.repo_root)
            if locations:
                result["locations"] = locations
            results.append(result)
    diff = report.diff
    if diff is not None:
        for g in diff.groups:
            rule = f"decision-{g.direction}"
            rules.setdefault(rule, {"id": rule, "name": f"decision_{g.direction}",
                                    "shortDescription": {"text": f"a decision the change makes {g.direction}"}})
            results.append({
                "ruleId": rule,
                "level": "error" if g in diff.forbidden else "note",
                "message": {"text": g.describe() + "".join(f"; {d}" for d in g.details())},
                "properties": {"base_tier": g.base_tier, "head_tier": g.head_tier, "proposals": g.count,
                               "targets": len(g.targets)},
            })
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "hitlgate policy check", "version": __version__,
                                "rules": list(rules.values())}},
            "results": results,
        }],
    }


# -- github -----------------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(report: CheckReport) -> str:
    """GitHub Actions workflow commands: an annotation per failure, a notice per note, then the verdict."""
    out = []
    command = {"error": "error", "warning": "warning", "note": "notice"}
    for s in report.steps:
        if s.status == "note":
            out.append(f"::notice title={_escape_property(s.title)}::{_escape_data(s.summary)}")
        for f in s.findings:
            level = f.level if s.status == "failed" or f.level != "error" else "warning"
            props = []
            if f.file:
                props.append(f"file={_escape_property(repo_path(f.file, report.repo_root))}")
                if f.line:
                    props.append(f"line={f.line}")
                    if f.col:
                        props.append(f"col={f.col}")
            props.append(f"title={_escape_property('hitlgate ' + s.title)}")
            out.append(f"::{command[level]} {','.join(props)}::{_escape_data(f.message)}")
    diff = report.diff
    if diff is not None:
        for g in diff.groups:
            kind = "error" if g in diff.forbidden else "notice"
            body = g.describe() + "".join(f"\n{d}" for d in g.details())
            out.append(f"::{kind} title={_escape_property('decision ' + g.direction)}::{_escape_data(body)}")
    out.append(f"hitlgate policy check: {verdict(report)}")
    return "\n".join(out)
