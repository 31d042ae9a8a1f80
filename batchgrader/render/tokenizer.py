"""The tokenizer cache, drawn: which encodings are where (``batchgrader tokenizer``)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from batchgrader.prompting.tokenizer_cache import TokenizerStatus

_SOURCES = {
    "batchgrader": "batchgrader's cache folder",
    "TIKTOKEN_CACHE_DIR": "from TIKTOKEN_CACHE_DIR",
    "DATA_GYM_CACHE_DIR": "from DATA_GYM_CACHE_DIR",
}


def tokenizer_table(status: TokenizerStatus) -> Group:
    header = Text.assemble(
        ("Tokenizer cache ", "bold"),
        (str(status.folder), ""),
        (f"  ({_SOURCES[status.source]})", "dim"),
    )
    table = Table(title_justify="left")
    table.add_column("encoding", style="bold", no_wrap=True)
    table.add_column("present")
    table.add_column("file", overflow="fold")
    fetched = any(e.action for e in status.encodings)
    for e in status.encodings:
        present = Text("yes", style="green") if e.present else Text("no", style="red")
        if e.action:
            present.append(f" ({e.action})", style="dim")
        table.add_row(e.name, present, Text(e.path.name))
    parts: list[Text | Table] = [header, table]
    if not status.complete and not fetched:
        parts.append(
            Text("Missing encodings: batchgrader tokenizer fetch downloads them.", style="yellow")
        )
    return Group(*parts)
