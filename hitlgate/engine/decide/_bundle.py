"""Standard OPA bundles built from a policy pack.

A bundle is a gzipped tarball holding the pack's non-test ``.rego`` modules
(by their path relative to the policy directory) and a ``.manifest`` whose
``revision`` is the modules revision (issue 9, Contract 2). It carries no
inventory and no ``data.json``: the engine sends each query the target's
neighbourhood in ``input.inventory``, so a bundle of 100,000 identities is
the size of its policy, and an inventory change needs no new bundle.
``opa run --server --bundle FILE`` serves it as is; the OPA backend checks
that OPA serves the local modules revision and reports the decision's
``policy_revision`` as the hash of that and the inventory revision.

The tarball is deterministic: entries sorted by name, fixed mtime, owner
and mode, and a gzip header without a timestamp or file name, so building
the same pack twice gives byte-identical files (CI can compare hashes).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hitlgate.engine.decide.policy import PolicyModules, PolicyPack
from hitlgate.errors import ConfigError

#: The data roots the bundle owns. OPA refuses writes under these paths via
#: the REST API while the bundle is active, so a stray ``PUT /v1/data`` cannot
#: change what decides behind the manifest's back (``inventory`` stays owned,
#: and empty, so a policy still reading ``data.inventory`` finds nothing
#: rather than something planted).
BUNDLE_ROOTS = ("hitlgate", "inventory")

# 2000-01-01T00:00:00Z: any fixed, non-zero time works; zero makes some tar
# readers warn about entries "from the future" or "implausibly old".
_FIXED_MTIME = 946684800


def manifest(pack: PolicyPack | PolicyModules) -> dict[str, Any]:
    """The ``.manifest`` document of the bundle for ``pack`` (its modules revision)."""
    revision = pack.modules_revision if isinstance(pack, PolicyPack) else pack.revision
    return {"revision": revision, "roots": list(BUNDLE_ROOTS)}


def bundle_entries(pack: PolicyPack | PolicyModules) -> list[tuple[str, bytes]]:
    """``(name, content)`` of every bundle file, sorted by name."""
    entries: list[tuple[str, bytes]] = [(".manifest", _json_bytes(manifest(pack)))]
    for name, source in pack.modules:
        entries.append((name, source.encode("utf-8")))
    return sorted(entries)


def build_bundle(pack: PolicyPack | PolicyModules) -> bytes:
    """The bytes of a deterministic OPA bundle (``.tar.gz``) for ``pack``."""
    raw = io.BytesIO()
    # The GNU format with fixed metadata keeps pax headers (which would
    # carry the builder's clock and user names) out of the archive.
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in bundle_entries(pack):
            info = tarfile.TarInfo(name=name)
            info.size = len(content)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    # mtime=0 and an empty file name keep the gzip header free of the build
    # time and the output path.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_bundle(pack: PolicyPack | PolicyModules, out: Path) -> Path:
    """Write the bundle for ``pack`` to ``out`` atomically and return ``out``.

    The file is written next to ``out`` and renamed into place, so an OPA
    server polling the path never reads a half-written bundle.
    """
    out = Path(out)
    data = build_bundle(pack)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigError(f"cannot write bundle: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write bundle {out}: {exc.strerror or exc}") from exc
    except BaseException:
        # Ctrl-C (or any other interruption) before the rename: no stray temporary file beside the bundle.
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _json_bytes(value: Any) -> bytes:
    # Sorted keys and fixed separators: the bytes depend only on the value.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
