"""The one safe way hitlgate writes a file a user named (``--out``, keys, init).

:func:`write_file` makes these checks, in this order:

1. Missing parent directories are created with mode 0700 (only the ones it
   creates; an existing directory keeps its mode). ``keys generate --out
   ~/.hitlgate/alice.pem`` must work on a fresh machine, and a folder made
   to hold private keys must not be world-readable.
2. An existing path that is a symbolic link is refused: following it would
   let whoever planted the link choose what gets overwritten (a warrant
   written over ``~/.bashrc``). The target path itself is never opened, so
   no ``open`` can follow a link either.
3. An existing regular file is refused unless the caller passed
   ``overwrite=True`` (``--force``); anything else (a directory, a FIFO) is
   always refused.
4. The data goes to a fresh temporary file in the same directory (created
   with ``O_EXCL``, mode 0600 or the umask's 0644), is fsynced and then
   renamed into place, so a reader never sees half a file and a crash
   leaves the old file intact. Without ``overwrite`` the rename is a
   ``link``, which fails if a file appeared at the path in the meantime.

Every refusal is an :class:`~hitlgate.errors.InputError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from hitlgate.errors import InputError


def _create_parents(directory: Path) -> None:
    missing: list[Path] = []
    d = directory
    while not d.exists() and not d.is_symlink():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(created, 0o700)
            # The umask may have removed bits only; chmod states the intent.
            os.chmod(created, 0o700)


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents with mode 0700; existing directories keep their mode.

    For folders that will hold secrets (the state store, keys). Raises
    ``OSError`` like :func:`os.mkdir`.
    """
    _create_parents(Path(directory))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode(secret: bool) -> int:
    if secret:
        return 0o600
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_file(
    path: str | Path, data: bytes | str, *, secret: bool, overwrite: bool = False, what: str = "file"
) -> Path:
    """Write ``data`` to ``path`` safely (see the module docstring) and return the path written.

    ``secret`` gives mode 0600 (keys, warrants); otherwise the umask's
    default (usually 0644). ``what`` names the file in error messages.
    """
    path = Path(os.path.expanduser(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    try:
        _create_parents(directory)
    except OSError as exc:
        raise InputError(f"cannot create directory {directory} for {what} {path}: {exc.strerror or exc}") from exc
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"refusing to write {what} {path}: it is a symbolic link", code="unsafe_path")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"refusing to write {what} {path}: not a regular file", code="unsafe_path")
        if not overwrite:
            raise InputError(f"refusing to overwrite {what} {path} (use --force)", code="file_exists")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, _file_mode(secret))
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise InputError(f"refusing to overwrite {what} {path} (use --force)", code="file_exists") from exc
            tmp.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)
    return path
