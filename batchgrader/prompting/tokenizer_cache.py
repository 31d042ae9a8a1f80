"""tiktoken's encoding files: where batchgrader keeps them, whether they are there, fetching them.

tiktoken downloads an encoding on its first use, from a fixed URL, into a cache folder
it reads from ``TIKTOKEN_CACHE_DIR`` (else ``DATA_GYM_CACHE_DIR``, else the temporary
directory). The file is named after the SHA-1 of its URL, and tiktoken checks its SHA-256
on every read (a bad file is deleted and downloaded again). batchgrader gives tiktoken a
stable per-user folder when the user chose none (``paths.tokenizer_cache_dir``), so that
``batchgrader tokenizer fetch`` and every later command use the same files, and a machine
without network can be given them by copying that folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from batchgrader import paths
from batchgrader.errors import TokenizerUnavailable, UsageError

FETCH_COMMAND = "batchgrader tokenizer fetch"
OFFLINE_DOCS = "docs/offline.md"
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class EncodingFile:
    """What tiktoken downloads for one encoding, and how it checks it."""

    name: str
    url: str
    sha256: str

    @property
    def file_name(self) -> str:
        """The file's name in tiktoken's cache folder: the SHA-1 of its URL."""
        return hashlib.sha1(self.url.encode()).hexdigest()


_BLOB = "https://openaipublic.blob.core.windows.net/encodings"
#: The encodings of the model catalogue, as tiktoken fetches them
#: (``tiktoken_ext/openai_public.py``; tests/test_tokenizer_cache.py checks they agree).
ENCODINGS: dict[str, EncodingFile] = {
    "o200k_base": EncodingFile(
        "o200k_base",
        f"{_BLOB}/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": EncodingFile(
        "cl100k_base",
        f"{_BLOB}/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

Source = Literal["TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "batchgrader"]


class EncodingStatus(BaseModel):
    name: str
    url: str
    path: Path
    present: bool  # the file is there and its SHA-256 is the one tiktoken expects
    action: Literal["downloaded", "already present"] | None = None  # set by fetch


class TokenizerStatus(BaseModel):
    folder: Path
    source: Source  # who chose the folder: a tiktoken variable, or batchgrader's default
    encodings: list[EncodingStatus]

    @property
    def complete(self) -> bool:
        return all(e.present for e in self.encodings)


def cache_source() -> Source:
    """Who chose the cache folder."""
    name = paths.tokenizer_cache_env()
    if name == "TIKTOKEN_CACHE_DIR":
        return "TIKTOKEN_CACHE_DIR"
    if name == "DATA_GYM_CACHE_DIR":
        return "DATA_GYM_CACHE_DIR"
    return "batchgrader"


@contextmanager
def tiktoken_folder() -> Iterator[Path]:
    """Point tiktoken at the cache folder while it loads an encoding; the folder.

    tiktoken reads its folder from the environment only, when it loads an encoding. When
    the user set neither of its variables (or set them empty), ``TIKTOKEN_CACHE_DIR``
    names batchgrader's folder for the duration of the block, under a lock.
    """
    folder = paths.tokenizer_cache_dir()
    if paths.tokenizer_cache_env() is not None:
        yield folder
        return
    with _ENV_LOCK:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        try:
            yield folder
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


def is_valid(path: Path, encoding: EncodingFile) -> bool:
    """Whether ``path`` holds the file tiktoken would accept for ``encoding``."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == encoding.sha256


def folder_status(folder: Path, names: Iterable[str] = ENCODINGS) -> list[EncodingStatus]:
    """Whether each encoding's file is in ``folder`` (and intact)."""
    rows = []
    for name in names:
        encoding = ENCODINGS[name]
        path = folder / encoding.file_name
        rows.append(
            EncodingStatus(name=name, url=encoding.url, path=path, present=is_valid(path, encoding))
        )
    return rows


def holds_all(folder: Path) -> bool:
    """Whether ``folder`` holds every encoding batchgrader uses."""
    return all(row.present for row in folder_status(folder))


def status() -> TokenizerStatus:
    """The cache folder in force and which encodings it holds."""
    folder = paths.tokenizer_cache_dir()
    return TokenizerStatus(folder=folder, source=cache_source(), encodings=folder_status(folder))


def _names(requested: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(requested)) or list(ENCODINGS)
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        raise UsageError(
            f"Unknown encoding {', '.join(repr(n) for n in unknown)}: "
            f"batchgrader uses {', '.join(ENCODINGS)}."
        )
    return names


def fetch(requested: Iterable[str] = ()) -> TokenizerStatus:
    """Download the encodings missing from the cache folder, through tiktoken itself.

    Raises ``TokenizerUnavailable`` (exit 2) naming the URL and the folder when a
    download or the write fails; encodings fetched before it stay.
    """
    import tiktoken

    folder = paths.tokenizer_cache_dir()
    rows = folder_status(folder, _names(requested))
    for row in rows:
        if row.present:
            row.action = "already present"
            continue
        try:
            with tiktoken_folder():
                tiktoken.get_encoding(row.name)
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors
            raise TokenizerUnavailable(
                f"Could not download the tokenizer encoding '{row.name}' from {row.url} "
                f"into {folder}: {describe_error(exc)}",
                hint=f"Check the network or proxy (HTTPS_PROXY). Or run '{FETCH_COMMAND}' on "
                "a machine that has network and copy the folder it names here, or set "
                f"TIKTOKEN_CACHE_DIR to a folder that holds the files ({OFFLINE_DOCS}).",
            ) from None
        row.present = is_valid(row.path, ENCODINGS[row.name])
        if not row.present:  # never report a file that is not there
            raise TokenizerUnavailable(
                f"tiktoken loaded the encoding '{row.name}' but {row.path} does not hold it.",
                hint="Check that the folder is writable, and that this tiktoken fetches "
                f"{row.url}.",
            )
        row.action = "downloaded"
    return TokenizerStatus(folder=folder, source=cache_source(), encodings=rows)


def describe_error(exc: BaseException) -> str:
    """The gist of a download error: requests' own messages run to several hundred characters."""
    text = " ".join(str(exc).split())
    if len(text) <= 160:
        return text or type(exc).__name__
    if "Caused by" not in text:  # not a chain of connection errors: its first sentence
        first = text.split(". ")[0]
        return first if len(first) <= 240 else first[:237] + "..."
    gist = [type(exc).__name__]
    gist += re.findall(r"Caused by (\w+)", text)[:1]
    gist += [m.strip() for m in re.findall(r"\[Errno -?\d+\] ([^\"')\]]+)", text)[:1]]
    return ", ".join(dict.fromkeys(gist))
