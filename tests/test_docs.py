"""The docs match the tree: every relative link and anchor resolves, every `python -m` module
named exists, and the README stays a front door (short, no commit hashes)."""

import importlib.util
import re
from pathlib import Path

import pytest
from paths import ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m ([a-z_][\w.]*)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a '#' in a code block is no heading
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with that anchor in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def module_exists(name: str) -> bool:
    """A project module is a file in the tree (or a package with `__main__.py`); any other must import."""
    parts = name.split(".")
    if not (ROOT / parts[0] / "__init__.py").exists():
        return importlib.util.find_spec(parts[0]) is not None
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__main__.py").exists()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_the_docs_run_exists(page):
    missing = sorted(name for name in set(MODULE.findall(page.read_text())) if not module_exists(name))
    assert not missing, f"{page.name} runs modules that are not in the tree: {missing}"


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    hashes = re.findall(r"\b(?:commit|git show) [0-9a-f]{7,40}\b", readme)
    assert not hashes, f"commit hashes belong in docs/, not the README: {hashes}"


def test_the_slug_follows_github():
    assert slug("The labels' pixel convention") == "the-labels-pixel-convention"
    assert slug("Latency at one client (`python -m bench`)") == "latency-at-one-client-python--m-bench"
