"""Files are written atomically: into a temporary file beside the target, then renamed over it.

An interrupted or failed write never leaves a half-written file, and the previous version stays intact.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pdmer.errors import InputError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp made it 0600; a saved file gets the usual permissions
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def check_output(path: str | Path | None, option: str, *, folder: bool = False) -> Path | None:
    """Refuse, before any slow work, an output path that could not be written at the end (None: the option was not
    given, nothing to check): ``path`` (a file, or with ``folder`` a folder) must not be the other kind, and the
    folder it goes in must be a folder this process can create files in. Missing folders on the way are allowed
    (writing creates them, as ``atomic_path`` does); nothing is created here, so a command that fails later leaves
    nothing behind."""
    if path is None:
        return None
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: it is a file, not a folder; give a folder path")
    if not folder and path.is_dir():
        raise InputError(f"{option} {path}: it is a folder; name a file in it")
    nearest = Path(os.path.abspath(path)).parent
    while not nearest.exists():  # the folder that writing would create the rest under
        nearest = nearest.parent
    if not nearest.is_dir():
        raise InputError(f"{option} {path}: {nearest} is a file, not a folder; pick a path under a folder")
    _probe(nearest, path, option)
    return path


def _probe(folder: Path, path: Path, option: str) -> None:
    """Create and remove a file in ``folder``: the one check that also sees read-only mounts, /proc and root."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".pdmer-probe.", dir=folder)
    except OSError as error:
        raise InputError(f"{option} {path}: cannot create files in {folder} ({error.strerror}); pick a folder you "
                         "can write to") from None
    os.close(handle)
    os.unlink(probe)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks; remembered per (path, size, mtime), so a changed file is hashed again."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
