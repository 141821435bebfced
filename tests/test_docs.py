"""The README is one screen that links the reference in docs/, and no relative link there points nowhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def outside_fences(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"\s{0,3}(`{3,}|~{3,})", line)
        if marker and (fence is None or marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence)):
            fence = None if fence else marker.group(1)
        elif fence is None:
            lines.append(line)
    return lines


def prose(text: str) -> list[str]:
    """The lines outside code, inline code blanked: a link there is not a link."""
    return [re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line) for line in outside_fences(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but - and _ removed, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub numbers repeats: name, name-1, name-2, ..."""
    found, seen = set(), {}
    for line in outside_fences(path.read_text()):
        heading = re.match(r"#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    return [match.group(1) for line in prose(path.read_text()) for match in LINK.finditer(line)]


def test_slug_is_githubs():
    assert slug("ImageBind weights (user-supplied, non-commercial)") == "imagebind-weights-user-supplied-non-commercial"
    assert slug("Speed side by side with `vibenet`") == "speed-side-by-side-with-vibenet"
    assert slug("The default model") == "the-default-model"


def test_the_readme_is_one_screen():
    size = len(README.read_bytes())
    assert size < 8 * 1024, f"README.md is {size} bytes: move detail into docs/"
    assert "./test.sh" in README.read_text(), "CI runs the README's test command: keep ./test.sh there"


def test_the_readme_links_every_docs_page():
    assert DOCS, "docs/ has no pages"
    linked = {(README.parent / unquote(target.split("#")[0])).resolve() for target in links(README)}
    missing = [page.name for page in DOCS if page.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor.lower() not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def readme_profile_commands() -> list[str]:
    """The README's profile example: its `pdmer` lines, as written (the last line, `./run.sh`, streams forever)."""
    block = re.search(r"## A profile.*?```sh\n(.*?)```", README.read_text(), re.S).group(1)
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.startswith(".venv/bin/pdmer")]


@pytest.mark.slow
def test_the_readme_profile_example_runs_as_written_and_writes_nothing_into_the_clone(tmp_path):
    import os
    import shlex
    import subprocess
    import sys

    commands = readme_profile_commands()
    assert [c.split()[1] for c in commands] == ["predict", "profile"]
    status = lambda: subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],  # noqa: E731
                                    cwd=ROOT, capture_output=True, text=True).stdout  # (caches are ignored)
    before = status()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PDMER_HOME": str(tmp_path / "pdmer")}
    for command in commands:
        words = [os.path.expanduser(w).replace(os.path.expanduser("~"), env["HOME"]) if w.startswith("~") else w
                 for w in shlex.split(command)]
        words[0] = sys.executable  # .venv/bin/pdmer of the clone: this interpreter's pdmer
        done = subprocess.run([words[0], "-m", "pdmer", *words[1:]], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "home" / "pdmer-curves" / "mine.csv").read_text().startswith("time_s,valence,arousal")
    assert (tmp_path / "pdmer" / "profiles" / "alice").exists()
    assert status() == before  # nothing new in the clone: no mine.csv beside the code
