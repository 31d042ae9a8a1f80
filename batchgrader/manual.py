"""The documentation shipped inside the package (``batchgrader docs``).

``batchgrader/docs`` links to the repository's ``docs/`` folder, so the wheel carries
the same pages as the repository; they are read with ``importlib.resources``, which
works from a wheel, a zip or a source checkout alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from batchgrader.errors import UsageError

#: Pages listed first, in this order (the rest follow by name).
FIRST = ("commands", "configuration", "json", "exit-codes", "costs", "durability")


@dataclass(frozen=True)
class Topic:
    """One page: its name (``commands``, ``servers/llama-stack``) and its title."""

    name: str
    title: str


def _root() -> Traversable:
    return resources.files("batchgrader") / "docs"


def _pages(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found |= _pages(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".md") and entry.name != "README.md":
            found[prefix + entry.name.removesuffix(".md")] = entry
    return found


def _title(text: str, name: str) -> str:
    heading = next((line for line in text.splitlines() if line.startswith("# ")), "")
    return heading.removeprefix("# ").strip() or name


def topics() -> list[Topic]:
    """Every page, the most useful first."""
    pages = _pages(_root())
    order = sorted(pages, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))
    return [Topic(n, _title(pages[n].read_text(encoding="utf-8"), n)) for n in order]


def read(topic: str) -> str:
    """The text of a page, by name (``json``, ``json.md``, ``docs/json.md``)."""
    pages = _pages(_root())
    name = topic.strip().removeprefix("docs/").removesuffix(".md").lower()
    if name in pages:
        return pages[name].read_text(encoding="utf-8")
    matches = [n for n in pages if n.split("/")[-1].startswith(name)] if name else []
    if len(matches) == 1:
        return pages[matches[0]].read_text(encoding="utf-8")
    raise UsageError(
        f"No documentation page {topic!r}"
        + (f" (it could be: {', '.join(sorted(matches))})." if matches else "."),
        hint="batchgrader docs lists the pages.",
    )
