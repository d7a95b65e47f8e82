"""A reload parses again only the inventory files whose bytes changed; every other guarantee holds.

Issue 9: one identity changed in a small file next to a 10^5-identity JSON
Lines export must reach the next decision within a second, which a reload
that parses and validates the export again cannot do. A reload keeps the
parsed documents of the last good load by path and SHA-256 of the bytes.
What must never happen: a file whose bytes changed (whatever its mtime and
size say) answered from the kept copy; a changed file that is invalid
loaded without its problem; a failed load losing the good copies; the
cache growing with every edit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.gen_inventory import Spec, write_inventory
from hitlgate.engine.decide.facts import FileFacts
from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.errors import ValidationError

CHANGING = "svc-changing-key"


def _change_file(data: Path, environment: str) -> Path:
    record = {"kind": "api_key", "environment": environment, "owner": "team-00000", "privilege": "low", "used_by": []}
    path = data / "zz-change.yaml"
    path.write_text(f"identities:\n  {CHANGING}: {json.dumps(record)}\n", encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A generated 200-identity JSON Lines export and a one-identity YAML file beside it."""
    directory = tmp_path / "data"
    write_inventory(Spec(size=200, seed=3), directory, "jsonl")
    _change_file(directory, "development")
    return directory


def _export(data: Path) -> Path:
    return data / "inventory.jsonl"


def _some_identity(facts: FileFacts) -> tuple[str, object]:
    key, record = next(iter(facts.inventory.document["identities"].items()))
    return key, record


def test_editing_the_small_file_reuses_the_export_and_shows_the_edit(data: Path) -> None:
    facts = FileFacts([data])
    key, record = _some_identity(facts)
    first = facts.current().revision

    _change_file(data, "production")
    index = facts.current()

    assert index.record("identities", CHANGING)["environment"] == "production"
    assert facts.inventory.document["identities"][key] is record, "the unchanged export must not be parsed again"
    assert index.revision != first
    assert index.revision == load_inventory([data]).revision


def _edit_in_place(export: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) and put the mtime back, as ``cp -p`` or ``rsync -t`` would."""
    assert len(old) == len(new)
    before = export.stat()
    text = export.read_text(encoding="utf-8")
    assert text.count(old) == 1
    export.write_text(text.replace(old, new), encoding="utf-8")
    os.utime(export, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert export.stat().st_size == before.st_size


def _line(key: str, record: object) -> str:
    return json.dumps({"section": "identities", "id": key, "record": record}, separators=(",", ":"))


def test_export_edited_in_place_with_its_mtime_and_size_put_back_is_parsed_again(data: Path) -> None:
    facts = FileFacts([data])
    key, record = _some_identity(facts)
    assert isinstance(record, dict) and record["owner"][:-1] == "team-0000"
    other = "team-0000" + ("1" if record["owner"] != "team-00001" else "2")
    _edit_in_place(_export(data), _line(key, record), _line(key, {**record, "owner": other}))

    assert facts.current().record("identities", key)["owner"] == other


def test_an_invalid_edit_of_the_export_is_validated_not_taken_from_the_cache(data: Path) -> None:
    facts = FileFacts([data])
    key, record = _some_identity(facts)
    assert isinstance(record, dict)
    old = _line(key, record)
    # A privilege the schema does not admit, written in as many bytes as the one it replaces.
    bad = old.replace(f'"privilege":"{record["privilege"]}"', '"privilege":"' + "x" * len(record["privilege"]) + '"')
    _edit_in_place(_export(data), old, bad)

    with pytest.raises(ValidationError, match=rf"inventory\.jsonl:\d+: identities\.{key}\.privilege"):
        facts.current()


def test_a_failed_load_keeps_the_last_good_files(data: Path) -> None:
    facts = FileFacts([data])
    key, record = _some_identity(facts)
    export = _export(data)
    good = export.read_bytes()

    export.write_bytes(good + b'{"section":"identities","id":"x","record":{"kind":"api_key"}}\n')
    with pytest.raises(ValidationError, match=r"inventory\.jsonl:\d+: identities\.x"):
        facts.current()

    export.write_bytes(good)
    _change_file(data, "production")  # And an edit of the other file, so the reload happens whatever the stamps say.
    assert facts.current().record("identities", CHANGING)["environment"] == "production"
    assert facts.inventory.document["identities"][key] is record, "the restored export's good parse was dropped"


def test_the_cache_holds_the_last_load_only(data: Path) -> None:
    facts = FileFacts([data])
    for environment in ("production", "staging", "development", "production"):
        _change_file(data, environment)
        assert facts.current().record("identities", CHANGING)["environment"] == environment
    # One entry per file of the last load: the export and the current small file, no past versions.
    assert len(facts._parsed._entries) == 2  # noqa: SLF001 - the bound is the point of this test.


def test_a_removed_record_is_gone_after_the_reload(data: Path) -> None:
    facts = FileFacts([data])
    assert facts.current().record("identities", CHANGING) is not None
    (data / "zz-change.yaml").unlink()
    assert facts.current().record("identities", CHANGING) is None


def test_a_reference_broken_by_the_small_file_is_named_at_its_line_in_the_reused_export(data: Path) -> None:
    # The export is reused, not parsed again, so the line of its record is found again for the error.
    export = _export(data)
    record = {"kind": "api_key", "environment": "production", "owner": "team-extra", "privilege": "low",
              "used_by": []}
    with export.open("a", encoding="utf-8") as fh:
        fh.write(_line("svc-extra", record) + "\n")
    line = len(export.read_text(encoding="utf-8").splitlines())
    extra = data / "zz-team.yaml"
    extra.write_text('teams:\n  team-extra: {"name": "Extra"}\n', encoding="utf-8")
    facts = FileFacts([data])
    assert facts.current().record("identities", "svc-extra") is not None

    extra.write_text("teams: {}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=rf"inventory\.jsonl:{line}: identities\.svc-extra\.owner"):
        facts.current()


@pytest.mark.parametrize("name", ["inventory.jsonl", "zz-change.yaml"])
def test_a_file_emptied_by_an_in_place_rewrite_fails_closed_instead_of_dropping_its_records(
    data: Path, name: str
) -> None:
    # open(..., "w") truncates before it writes: a reload in between saw an empty file as an empty inventory,
    # and a protected target was, for that moment, merely unknown.
    facts = FileFacts([data])
    assert facts.current().record("identities", CHANGING) is not None
    (data / name).write_text("\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=rf"{name}: the inventory file is empty; write {{}} if it is meant"):
        facts.current()
    (data / "zz-change.yaml").write_text("{}\n", encoding="utf-8")
    if name == "zz-change.yaml":
        assert facts.current().record("identities", CHANGING) is None, "an explicit {} is an empty file's meaning"
