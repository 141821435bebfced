"""Where profiles live, and how they are written so that no reader ever sees half of one.

Layout under the profiles root (``$PDMER_HOME/profiles``, else the user data directory's ``pdmer/profiles``):

    alice -> .store/alice-<random>     a symlink: the published version of profile "alice"
    .store/alice-<random>/             profile.json, weights.safetensors, model.onnx
    .locks/alice.lock                  serialises writers of one name

A profile is written complete into a fresh folder under ``.store`` first; publishing it is one atomic
``os.replace`` of the symlink. A process killed before that leaves the old profile (or none) in place, plus an
unpublished folder that the next write of that name removes. Writers of one name take its lock, so two
concurrent creates publish one after the other; each publishes a whole profile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pdmer.errors import InputError

DEFAULT = "default"  # reserved: the base model itself, unadapted
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILES = ("profile.json", "weights.safetensors", "model.onnx")
STORE, LOCKS = ".store", ".locks"
STALE_SECONDS = 3600  # a staging folder this old belongs to a writer that was killed


class ProfileError(InputError):
    """A profile is missing, unusable, or cannot be written."""


def profiles_root() -> Path:
    if os.environ.get("PDMER_HOME"):
        return Path(os.environ["PDMER_HOME"]) / "profiles"
    import platformdirs

    return Path(platformdirs.user_data_dir("pdmer")) / "profiles"


def check_name(name: str, *, creating: bool = False) -> str:
    """Names are file names: letters, digits, '_', '-', '.', at most 64, no path tricks."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ProfileError(f"profile name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
                           "starting with a letter or digit (no '/', no '..')")
    if creating and name == DEFAULT:
        raise ProfileError(f"the profile name {DEFAULT!r} is reserved for the base model; choose another name")
    return name


def profile_dir(name: str, root: Path | None = None) -> Path | None:
    """The published folder of profile ``name``, or None."""
    link = (root or profiles_root()) / check_name(name)
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def names(root: Path | None = None) -> list[str]:
    root = root or profiles_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.is_symlink()
                  and NAME_PATTERN.fullmatch(p.name) and profile_dir(p.name, root) is not None)


@contextlib.contextmanager
def name_lock(name: str, root: Path) -> Iterator[None]:
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    with open(root / LOCKS / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging(name: str, root: Path | None = None) -> Iterator[Path]:
    """A fresh folder to write a profile's files into; removed unless :func:`publish` took it."""
    root = root or profiles_root()
    folder = root / STORE / f".staging-{name}-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def publish(name: str, folder: Path, root: Path | None = None, *, replace: bool = True) -> Path:
    """Make the complete profile in ``folder`` the published ``name``, atomically; returns its final folder."""
    root = root or profiles_root()
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise ProfileError(f"profile {name!r} is incomplete (missing {missing}); nothing was published")
    for file in FILES:  # the bytes reach the disk before the symlink points at them
        with open(folder / file, "rb") as handle:
            os.fsync(handle.fileno())
    with name_lock(name, root):
        old = profile_dir(name, root)
        if old is not None and not replace:
            raise ProfileError(f"profile {name!r} exists; delete it first or pass --force to replace it")
        final = root / STORE / f"{name}-{uuid.uuid4().hex}"
        folder.rename(final)
        link = root / STORE / f".link-{name}-{uuid.uuid4().hex}"
        link.symlink_to(Path(STORE) / final.name)  # relative: the root can move as a whole
        os.replace(link, root / name)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        remove_unpublished(name, root)
    return final


def remove_unpublished(name: str, root: Path) -> None:
    """Folders of ``name`` left by killed writers (called with the name's lock held). Staging folders may belong
    to a writer still at work: only those older than STALE_SECONDS go."""
    current = profile_dir(name, root)
    for folder in (root / STORE).glob(f"{name}-*"):
        if folder != current and folder.name[len(name) + 1:].isalnum():
            shutil.rmtree(folder, ignore_errors=True)
    for folder in (root / STORE).glob(f".staging-{name}-*"):
        if folder.name[len(name) + 10:].isalnum() and time.time() - folder.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)


def delete(name: str, root: Path | None = None) -> None:
    root = root or profiles_root()
    if check_name(name) == DEFAULT:
        raise ProfileError(f"the {DEFAULT!r} profile is the base model; it cannot be deleted")
    with name_lock(name, root):
        folder = profile_dir(name, root)
        if folder is None:
            raise unknown(name, root)
        (root / name).unlink()
        shutil.rmtree(folder, ignore_errors=True)


def unknown(name: str, root: Path | None = None) -> ProfileError:
    known = [DEFAULT, *names(root)]
    return ProfileError(f"no profile named {name!r}; known profiles: {', '.join(known)} "
                        "(make one with: pdmer profile create NAME --audio SONG --curve CURVE.csv)")


def read_info(folder: Path) -> dict:
    try:
        return json.loads((folder / "profile.json").read_text())
    except (OSError, ValueError) as error:
        raise ProfileError(f"{folder / 'profile.json'} is unreadable ({error}); recreate the profile") from None
