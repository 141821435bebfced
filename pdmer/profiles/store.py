"""Where profiles live, and how they are written so that no reader ever sees half of one.

Layout under the profiles root (``$PDMER_HOME/profiles``, else the user data directory's ``pdmer/profiles``):

    alice -> .store/alice-<random>     a symlink: the published version of profile "alice"
    .store/alice-<random>/             profile.json, weights.safetensors, model.onnx
    .store/.staging-alice-<random>/    a profile being written, flocked by its writer
    .locks/alice.lock                  serialises writers of one name; removed with the profile

A profile is written complete into a fresh folder under ``.store`` first; publishing it is one atomic
``os.replace`` of the symlink. A process killed before that leaves the old profile (or none) in place, plus a
folder that the next write to the store removes (:func:`sweep`). Writers of one name take its lock, so two
concurrent creates publish one after the other; each publishes a whole profile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from pdmer.errors import InputError

DEFAULT = "default"  # reserved: the base model itself, unadapted
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILES = ("profile.json", "weights.safetensors", "model.onnx")
STORE, LOCKS = ".store", ".locks"
# What a writer names: "NAME-<uuid4 hex>" (a profile's folder) or ".link-NAME-<uuid4 hex>" (its link being made)
WRITTEN = re.compile(r"(?:\.link-)?(.+)-[0-9a-f]{32}")


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
def name_lock(name: str, root: Path, *, wait: bool = True) -> Iterator[bool]:
    """Serialises the writers of ``name``. Yields True holding the lock; with ``wait`` off, False (holding nothing)
    when another process holds it."""
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    handle = take_lock(root / LOCKS / f"{name}.lock", wait)
    try:
        yield handle is not None
    finally:
        if handle is not None:
            handle.close()  # releases the flock


def take_lock(path: Path, wait: bool):
    """An open, flocked ``path``, or None when ``wait`` is off and it is taken. The lock file of a deleted profile is
    removed while held: a process that was waiting then holds a file no longer at ``path``, so it checks and locks
    the current one instead; two writers never hold one name."""
    while True:
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                return handle
        handle.close()


@contextlib.contextmanager
def store_lock(root: Path, kind: int) -> Iterator[None]:
    """A flock on ``.store`` itself: shared while a writer makes and locks its staging folder, exclusive while
    :func:`sweep` looks for abandoned ones, so that it never sees a new folder before its writer has locked it."""
    (root / STORE).mkdir(parents=True, exist_ok=True)
    handle = os.open(root / STORE, os.O_RDONLY)
    try:
        fcntl.flock(handle, kind)
        yield
    finally:
        os.close(handle)


@contextlib.contextmanager
def staging(name: str, root: Path | None = None) -> Iterator[Path]:
    """A fresh folder to write a profile's files into; removed unless :func:`publish` took it. Its writer flocks it
    until done: the kernel drops that lock when the process dies, even by SIGKILL, and no other process (not one
    that reuses the pid) can hold it, so a folder nobody holds is safe to remove."""
    root = root or profiles_root()
    sweep(root)
    with store_lock(root, fcntl.LOCK_SH):
        folder = root / STORE / f".staging-{name}-{uuid.uuid4().hex}"
        folder.mkdir()
        handle = os.open(folder, os.O_RDONLY)
        fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.close(handle)


def sweep(root: Path) -> None:
    """Remove what killed writers left in the store: staging folders no live process holds, unpublished folders
    and links, and the lock files of names that have no profile (each name only while no writer holds it)."""
    with store_lock(root, fcntl.LOCK_EX):
        for folder in (root / STORE).glob(".staging-*"):
            remove_if_abandoned(folder)
    for name in names_on_disk(root):
        with name_lock(name, root, wait=False) as held:
            if held:
                remove_unpublished(name, root)
                if profile_dir(name, root) is None:
                    (root / LOCKS / f"{name}.lock").unlink()  # safe while held: see take_lock


def remove_if_abandoned(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # published or removed meanwhile
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(folder, ignore_errors=True)
    except BlockingIOError:
        pass  # its writer is still at work
    finally:
        os.close(handle)


def names_on_disk(root: Path) -> list[str]:
    """Every name with a lock file, a published or unpublished folder, or a link being made."""
    found = {path.stem for path in (root / LOCKS).glob("*.lock")}
    for path in (root / STORE).iterdir() if (root / STORE).is_dir() else ():
        match = WRITTEN.fullmatch(path.name)
        if match:
            found.add(match[1])
    return sorted(n for n in found if NAME_PATTERN.fullmatch(n) and ".." not in n)


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
    """Folders and links of ``name`` that killed writers renamed but never published (call with its lock held:
    then only the published folder is in use)."""
    current = profile_dir(name, root)
    keep = current.name if current else None  # by name: resolve() may have changed the root's part of the path
    for path in (root / STORE).glob(f"*{name}-*"):
        match = WRITTEN.fullmatch(path.name)
        if match and match[1] == name and path.name != keep:
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)


def delete(name: str, root: Path | None = None) -> None:
    root = root or profiles_root()
    if check_name(name) == DEFAULT:
        raise ProfileError(f"the {DEFAULT!r} profile is the base model; it cannot be deleted")
    if profile_dir(name, root) is None:  # before the lock: a missing name leaves nothing behind, not even a lock file
        raise unknown(name, root)
    with name_lock(name, root):
        folder = profile_dir(name, root)
        if folder is not None:
            (root / name).unlink()
            shutil.rmtree(folder, ignore_errors=True)
        (root / LOCKS / f"{name}.lock").unlink()  # safe while held: see take_lock
    if folder is None:
        raise unknown(name, root)  # deleted by another process meanwhile
    sweep(root)


def unknown(name: str, root: Path | None = None) -> ProfileError:
    known = [DEFAULT, *names(root)]
    return ProfileError(f"no profile named {name!r}; known profiles: {', '.join(known)} "
                        "(make one with: pdmer profile create NAME --audio SONG --curve CURVE.csv)")


def read_info(folder: Path, name: str | None = None) -> dict:
    """``folder``'s profile.json; errors name stored profile ``name`` by its name, not by its path in the store."""
    try:
        info = json.loads((folder / "profile.json").read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        return info
    except (OSError, ValueError) as error:
        if name is None:
            raise ProfileError(f"{folder / 'profile.json'} is unreadable ({error}); recreate the profile") from None
        reason = error.strerror if isinstance(error, OSError) else error  # an OSError's text holds the path
        raise ProfileError(f"profile {name!r} is unreadable ({reason}); recreate it with pdmer profile create "
                           f"{name} --force, or delete it") from None
