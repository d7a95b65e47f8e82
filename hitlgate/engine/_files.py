"""The one safe way hitlgate writes a file a user named (``--out``, keys, init).

:func:`write_file` makes these checks, in this order:

1. The parent directory is reached by walking its path one component at a
   time with ``openat``-style calls (``dir_fd``, ``O_NOFOLLOW``), and
   everything below happens relative to the directory opened that way, so
   the directory cannot be swapped for a link between the check and the
   write. **The symlink rule**: a symbolic link among the directories is
   followed only if it is owned by the user running hitlgate or by root;
   a link owned by anyone else is refused (``unsafe_path``), because it
   lets that user choose where the file lands (``--out sd/dirlink/k.pem``
   with ``dirlink`` planted by another user in a shared folder). Links you
   or root made (``/tmp -> /private/tmp``, a home directory on another
   disk) keep working. The links a followed link points through are
   checked by the same rule.
2. Missing parent directories are created with mode 0700 (only the ones it
   creates; an existing directory keeps its mode). ``keys generate --out
   ~/.hitlgate/alice.pem`` must work on a fresh machine, and a folder made
   to hold private keys must not be world-readable.
3. An existing path that is a symbolic link is refused, whoever owns it:
   following it would let whoever planted the link choose what gets
   overwritten (a warrant written over ``~/.bashrc``). The target path
   itself is never opened, so no ``open`` can follow a link either.
4. An existing regular file is refused unless the caller passed
   ``overwrite=True`` (``--force``); anything else (a directory, a FIFO) is
   always refused.
5. The data goes to a fresh temporary file in the same directory (created
   with ``O_EXCL``; mode 0600 for secrets, else 0644 less the umask's
   bits, so an export is never group- or world-writable), is fsynced and then
   renamed into place, so a reader never sees half a file and a crash
   leaves the old file intact. Without ``overwrite`` the rename is a
   ``link``, which fails if a file appeared at the path in the meantime.

Every refusal is an :class:`~hitlgate.errors.InputError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
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


#: How many symbolic links one path may pass through (the kernel's own limit is 40).
MAX_LINKS = 40

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _trusted_link_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def _open_directory(directory: Path, *, what: str, path: Path) -> int:
    """Open ``directory`` without following untrusted links, creating missing parts 0700; return its fd.

    See rule 1 of the module docstring. Raises InputError for a refused
    link and OSError for everything else.
    """
    fd = os.open("/" if directory.is_absolute() else ".", _DIR_FLAGS)
    pending = [part for part in reversed(directory.parts) if part != directory.anchor]
    walked = Path(directory.anchor)
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            created = False
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
                    created = True
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            walked = walked / name
            if stat.S_ISLNK(st.st_mode):
                if not _trusted_link_owner(st.st_uid):
                    raise InputError(
                        f"refusing to write {what} {path}: {walked} is a symbolic link owned by uid {st.st_uid} "
                        f"(neither you, uid {os.geteuid()}, nor root), so that user chooses where the file lands; "
                        "give a path without it",
                        code="unsafe_path",
                    )
                links += 1
                if links > MAX_LINKS:
                    raise InputError(f"cannot write {what} {path}: too many symbolic links", code="unsafe_path")
                target = Path(os.readlink(name, dir_fd=fd))
                if target.is_absolute():
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                pending.extend(part for part in reversed(target.parts) if part != target.anchor)
                continue
            # O_NOFOLLOW: a link swapped in since the stat fails here (ELOOP) instead of being followed.
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                # The umask may have removed bits only; fchmod states the intent.
                os.fchmod(fd, 0o700)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _file_mode(secret: bool) -> int:
    if secret:
        return 0o600
    umask = os.umask(0)
    os.umask(umask)
    # Never group- or world-writable, even under a umask of 002 or 000.
    return 0o644 & ~umask


def names_a_directory(given: str) -> bool:
    """Whether ``given`` can only name a directory: empty, ``.``/``..``, or ending in ``/`` (or ``/.``, ``/..``).

    Checked on the text as given: ``Path("out/")`` is ``out``, so once made a
    ``Path`` a trailing slash would write a file named after the directory.
    """
    return not given or given in (".", "..") or given.endswith((os.sep, "/", "/.", "/.."))


def write_file(
    path: str | Path,
    data: bytes | str,
    *,
    secret: bool,
    overwrite: bool = False,
    what: str = "file",
    if_exists: str = "use --force",
) -> Path:
    """Write ``data`` to ``path`` safely (see the module docstring) and return the path written.

    ``secret`` gives mode 0600 (keys, warrants); otherwise 0644 less the
    umask's bits. ``what`` names the file in error messages; ``if_exists``
    is the hint in the refusal to overwrite, so a caller without ``--force``
    does not advertise one.
    """
    given = os.fspath(path)
    if names_a_directory(given):
        raise InputError(f"cannot write {what} {given!r}: give a file name, not a directory", code="unsafe_path")
    path = Path(os.path.expanduser(given))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    name = path.name
    try:
        dfd = _open_directory(directory, what=what, path=path)
    except OSError as exc:
        raise InputError(f"cannot create directory {directory} for {what} {path}: {exc.strerror or exc}") from exc
    try:
        _write_in(
            dfd, name, payload, path=path, secret=secret, overwrite=overwrite, what=what, if_exists=if_exists
        )
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def _write_in(
    dfd: int, name: str, payload: bytes, *, path: Path, secret: bool, overwrite: bool, what: str, if_exists: str
) -> None:
    try:
        st: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
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
            raise InputError(f"refusing to overwrite {what} {path} ({if_exists})", code="file_exists")
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
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
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        else:
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError as exc:
                raise InputError(f"refusing to overwrite {what} {path} ({if_exists})", code="file_exists") from exc
            os.unlink(tmp, dir_fd=dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
