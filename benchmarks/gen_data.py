"""Generate the benchmark datasets: realistic prose in CSV, deterministic, fast.

Each file has the columns ``id``, ``question`` and ``response``. Response lengths are
log-normal in words (median ~150, long tail clipped at 2,000); the prose is drawn from a
Zipf-weighted English vocabulary (common words, derived rarer words, numbers, code-ish
identifiers and a little non-ASCII typography) with punctuation, sentence capitals,
quoted words, embedded line breaks and paragraphs. About 0.1% of responses are empty
or blank (batchgrader skips those rows, and so do the baselines).

Rows are generated in fixed blocks of 10,000, each from its own seeded generator, so
the smaller files are exact prefixes of the larger ones and a file's bytes depend only
on the seed and the row count. A response is a word-aligned slice of a shared prose
pool (a few million words), which is what makes 1M rows (~1.4 GB) take seconds.

    uv run python benchmarks/gen_data.py --sizes 10k,100k,1m

Files go to ``benchmarks/data/`` (gitignored) as ``prose_{size}.csv``; an existing file
whose manifest matches is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED = 20240611
BLOCK_ROWS = 10_000
POOL_WORDS = 3_000_000
MEDIAN_WORDS = 150
SIGMA = 0.75
MAX_WORDS = 2_000
BLANK_SHARE = 0.001
VERSION = 1  # bump when the generator's output changes

_COMMON = """
the of and to a in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if
so no will more can who its out about up what some them into only other than then also
time could these two may first new like very any after our most over such where well
because through just those how much should each between many being while before both
under same however here must might great still own way even life without again never
against last long world people year day work part number system data model answer
question example problem result results value values function method approach point
answer model user text response quality clear correct incomplete relevant detailed
explanation reasoning evidence source claim argument summary context information
important different small large good better best high low right wrong simple complex
make made use used using find found give given take taken show shown know known think
explain describe provide consider include includes including suggest suggests help
helps need needs want seems seem appear appears become becomes remain remains follow
following based because although though whether either rather quite often usually
sometimes always never really actually probably perhaps certainly clearly simply
process analysis research study studies test tests testing performance memory speed
error errors issue issues change changes case cases set sets list lists group order
level form forms line lines step steps rule rules term terms area areas state states
water energy light heat earth plant plants animal animals cell cells body health
history century war government country city market price prices cost costs money
company customer customers service product products report reports team teams
student students teacher school learning language words sentence paragraph essay
writing reader readers author style tone grammar spelling structure argument
feature features code library libraries database server client request requests
file files input output table column row rows query queries network security
because therefore thus hence moreover furthermore meanwhile nevertheless instead
"""
_STEMS = """
account adapt adjust align analyse apply argue arrange assess assign attach attend
balance build calculate capture carry certify change claim classify collect combine
commit compare compile complete compose compute conclude conduct configure connect
consider construct contain continue contract control convert correct count create
decide declare define deliver depend derive describe design detect determine develop
differ direct discover display distribute divide document edit educate elect employ
enable encode encourage enforce engage enhance ensure establish estimate evaluate
examine execute expand expect explain explore express extend extract form format
function generate govern grade govern identify illustrate implement improve include
indicate inform install integrate interpret introduce invest involve isolate judge
justify maintain manage measure merge migrate minimise modify monitor motivate
negotiate normalise observe obtain operate optimise organise perform permit persuade
plan predict prepare present preserve prevent process produce program protect prove
publish qualify question rank react read realise reason recommend record reduce refer
reflect register regulate relate release rely remove render repair repeat replace
report represent require resolve respond restrict retain reveal review revise rotate
sample schedule score select separate serve settle simplify solve specify stabilise
standard store structure submit suggest summarise supply support sustain tokenise
train transform translate treat update validate value verify write
"""
_SUFFIXES = ("", "s", "ed", "ing", "er", "ers", "ion", "ions", "ment", "able", "ly", "ive")
_PREFIXES = ("", "re", "un", "pre", "over", "co", "mis", "non-")
_TYPOGRAPHY = """
café naïve résumé façade coöperate déjà vu — – … “quoted” ‘single’ €20 £5 ±3 °C
μs Zürich São Paulo Kraków 東京 日本語 🙂 ✓ → ≤ ≥
"""
_CODE = """
df.apply() pd.read_csv() encode_ordinary() numpy.float64 x_train y_pred
user_id __init__ self.model HTTP/1.1 JSON CSV SQL API GPU CPU v2.3.1 0x1F
https://example.com/docs?id=42 C++ O(n) f(x) a/b i.e. e.g. etc.
"""
_SEPARATORS = (" ", ", ", ". ", "? ", "! ", "; ", ": ", " - ", ".\n\n", ".\n", "\n- ")
_SEPARATOR_P = (0.815, 0.075, 0.07, 0.004, 0.002, 0.004, 0.004, 0.004, 0.012, 0.005, 0.005)
_SENTENCE_END = frozenset({". ", "? ", "! ", ".\n\n", ".\n"})


def parse_size(text: str) -> int:
    """``10k`` -> 10_000, ``1m`` -> 1_000_000, ``2500`` -> 2_500."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    return int(float(number) * factor)


def size_label(rows: int) -> str:
    """The inverse of ``parse_size`` for round numbers: 100_000 -> ``100k``."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def dataset_path(rows: int, data_dir: Path = DATA_DIR) -> Path:
    """Where the dataset of ``rows`` rows lives."""
    return data_dir / f"prose_{size_label(rows)}.csv"


def _vocabulary() -> list[str]:
    """Words in (rough) frequency order: common words first, then the long tail."""
    words = list(dict.fromkeys(_COMMON.split()))
    stems = list(dict.fromkeys(_STEMS.split()))
    derived = [
        p + s + x
        for x in _SUFFIXES
        for p in _PREFIXES[:1]
        for s in stems
        if p + s + x not in words and not (x and s.endswith("e") and x[0] in "aei")
    ]
    derived += [
        p + s[:-1] + x
        for x in _SUFFIXES[2:]
        for p in _PREFIXES[:1]
        for s in stems
        if s.endswith("e")
    ]
    numbers = [str(n) for n in (*range(100), 1999, 2020, 2023, 2024, 2025, 10_000, 3.14)]
    rare = [p + s for p in _PREFIXES[1:] for s in stems]  # rarer, longer coinages
    tail = list(dict.fromkeys(derived)) + _TYPOGRAPHY.split() + _CODE.split() + numbers
    rng = np.random.default_rng(SEED)
    rng.shuffle(tail)
    return words + tail + rare


def build_pool(seed: int = SEED, n_words: int = POOL_WORDS) -> tuple[str, np.ndarray, np.ndarray]:
    """One long prose string and the start and end offset of each of its words."""
    rng = np.random.default_rng([seed, 0])
    vocab = _vocabulary()
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 2.7) ** 1.2  # Zipf-Mandelbrot
    weights /= weights.sum()
    plain = np.array(vocab, dtype=object)
    capital = np.array([w[:1].upper() + w[1:] for w in vocab], dtype=object)
    idx = rng.choice(len(vocab), size=n_words, p=weights)
    seps = np.array(_SEPARATORS, dtype=object)[
        rng.choice(len(_SEPARATORS), size=n_words, p=_SEPARATOR_P)
    ]
    sentence_end = np.isin(seps, list(_SENTENCE_END))
    capitalise = np.empty(n_words, dtype=bool)
    capitalise[0] = True
    capitalise[1:] = sentence_end[:-1]
    words = np.where(capitalise, capital[idx], plain[idx])
    quoted = np.flatnonzero(rng.random(n_words) < 0.012)
    words[quoted] = ['"' + w + '"' for w in words[quoted]]
    apostrophe = np.flatnonzero(rng.random(n_words) < 0.01)
    words[apostrophe] = [w + "'s" for w in words[apostrophe]]
    word_len = np.fromiter(map(len, words), dtype=np.int64, count=n_words)
    sep_len = np.fromiter(map(len, seps), dtype=np.int64, count=n_words)
    starts = np.zeros(n_words, dtype=np.int64)
    np.cumsum((word_len + sep_len)[:-1], out=starts[1:])
    ends = starts + word_len
    pieces = np.empty(2 * n_words, dtype=object)
    pieces[0::2] = words
    pieces[1::2] = seps
    return "".join(pieces.tolist()), starts, ends


def generate_block(
    block: int, pool: tuple[str, np.ndarray, np.ndarray], seed: int = SEED
) -> pl.DataFrame:
    """Rows ``block * BLOCK_ROWS`` to ``(block + 1) * BLOCK_ROWS``, the same every time."""
    text, starts, ends = pool
    n_pool = len(starts)
    rng = np.random.default_rng([seed, 1, block])
    n = BLOCK_ROWS
    words = np.clip(
        np.rint(rng.lognormal(np.log(MEDIAN_WORDS), SIGMA, size=n)), 1, MAX_WORDS
    ).astype(np.int64)
    first = rng.integers(0, n_pool - MAX_WORDS, size=n)
    r_start = starts[first].tolist()
    r_end = ends[first + words - 1].tolist()
    responses = [text[a:b] for a, b in zip(r_start, r_end, strict=True)]
    blank = np.flatnonzero(rng.random(n) < BLANK_SHARE).tolist()
    for i in blank:
        responses[i] = ("", " ", "\n", "  \t ")[i % 4]
    q_words = rng.integers(6, 30, size=n)
    q_first = rng.integers(0, n_pool - 30, size=n)
    q_start = starts[q_first].tolist()
    q_end = ends[q_first + q_words - 1].tolist()
    questions = [text[a:b].capitalize() + "?" for a, b in zip(q_start, q_end, strict=True)]
    ids = np.arange(block * n + 1, (block + 1) * n + 1, dtype=np.int64)
    return pl.DataFrame(
        {"id": ids, "question": questions, "response": responses},
        schema={"id": pl.Int64, "question": pl.String, "response": pl.String},
    )


def generate(rows: int, data_dir: Path = DATA_DIR, *, force: bool = False) -> Path:
    """Write the dataset of ``rows`` rows (a multiple of 10,000) unless it is current."""
    if rows % BLOCK_ROWS:
        raise SystemExit(f"--sizes: {rows} is not a multiple of {BLOCK_ROWS}.")
    path = dataset_path(rows, data_dir)
    manifest_path = path.with_suffix(".json")
    wanted = {"version": VERSION, "seed": SEED, "rows": rows}
    if not force and path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted and manifest.get(
            "bytes"
        ) == path.stat().st_size:
            print(f"{path.name}: up to date ({manifest['bytes'] / 1e6:,.0f} MB)", file=sys.stderr)
            return path
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pool = _pool()
    tmp = path.with_suffix(".csv.tmp")
    words_total = 0
    with tmp.open("wb") as handle:
        for block in range(rows // BLOCK_ROWS):
            df = generate_block(block, pool)
            words_total += int(df["response"].str.count_matches(r"\S+").sum())
            df.write_csv(handle, include_header=block == 0)
    tmp.replace(path)
    size = path.stat().st_size
    manifest = wanted | {"bytes": size, "response_words": words_total}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - started
    print(f"{path.name}: {rows:,} rows, {size / 1e6:,.0f} MB in {seconds:.1f} s", file=sys.stderr)
    return path


_POOL: tuple[str, np.ndarray, np.ndarray] | None = None


def _pool() -> tuple[str, np.ndarray, np.ndarray]:
    global _POOL
    if _POOL is None:
        _POOL = build_pool()
    return _POOL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help="comma-separated row counts")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--force", action="store_true", help="regenerate even if current")
    args = parser.parse_args(argv)
    for size in args.sizes.split(","):
        generate(parse_size(size), args.data_dir, force=args.force)


if __name__ == "__main__":
    main()
