"""Regenerate the bad-input corpus: ``uv run python tests/data/bad/make_corpus.py``.

Every file here is small and committed. Inputs that must be big (a 10 MB cell, a row
over the model's context), unreadable or missing are made at test time in tmp.
``CASES`` in ``tests/test_bad_inputs.py`` says what each file must do.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent

#: name -> exact bytes (text is written as UTF-8 unless given as bytes).
FILES: dict[str, str | bytes] = {
    # --- inputs: the file as a whole -------------------------------------------------
    "inputs/empty.csv": b"",
    "inputs/blank_lines_only.csv": b"\n\n  \n",
    "inputs/header_only.csv": "id,response\n",
    "inputs/header_only_crlf.tsv": "id\tresponse\r\n",
    "inputs/missing_column.csv": "id,answer\n1,hello\n2,world\n",
    "inputs/duplicate_columns.csv": "id,response,response\n1,a,b\n",
    "inputs/duplicate_columns.tsv": "response\tid\tid\nx\t1\t2\n",
    "inputs/not_a_table.txt": "response\nhello\n",
    # --- inputs: bytes and quoting ---------------------------------------------------
    "inputs/latin1.csv": b"id,response\n1,ok\n2,caf\xe9 cr\xe8me\n",
    "inputs/utf16.csv": "id,response\n1,hello\n".encode("utf-16"),
    "inputs/utf16le_no_bom.csv": "id,response\n1,hello\n".encode("utf-16-le"),
    "inputs/zero_filled_tail.csv": b"id,response\n1,a\n2,b\n" + b"\x00" * 64,
    "inputs/latin1.jsonl": b'{"response": "ok"}\n{"response": "caf\xe9"}\n',
    "inputs/unbalanced_quote.csv": 'id,response\n1,"never closed\n2,b\n3,c\n',
    "inputs/ragged_long_row.csv": "id,response\n1,a\n2,b,extra\n3,c\n",
    "inputs/ragged_short_row.tsv": "id\tresponse\tscore\n1\ta\t3\n2\tb\n",
    "inputs/text_after_closing_quote.csv": 'id,response\n1,"quoted"then text\n',
    "inputs/unclosed_quote_in_header.csv": '"id,response\n1,a\n',
    "inputs/embedded_nul.jsonl": b'{"response": "fine"}\n{"response": "bro\x00ken"}\n',
    # --- inputs: JSON and JSONL ------------------------------------------------------
    "inputs/object_not_array.json": '{"response": "a single object"}\n',
    "inputs/array_of_strings.json": '["a", "b"]\n',
    "inputs/array_mixed.json": '[{"response": "a"}, 3]\n',
    "inputs/truncated.json": '[{"response": "a"}, {"response": "b"\n',
    "inputs/empty_array.json": "[]\n",
    "inputs/jsonl_broken_middle.jsonl": (
        '{"response": "one"}\n{"response": "two", \n{"response": "three"}\n'
    ),
    "inputs/jsonl_scalar_line.jsonl": '{"response": "one"}\n42\n{"response": "three"}\n',
    "inputs/jsonl_array_line.jsonl": '{"response": "one"}\n["two"]\n',
    "inputs/json_lines_in_json.json": '{"response": "one"}\n{"response": "two"}\n',
    "inputs/nested_text.jsonl": '{"response": {"text": "nested"}}\n',
    "inputs/number_text.jsonl": '{"response": 1}\n{"response": 2}\n',
    "inputs/bool_text.json": '[{"response": true}, {"response": false}]\n',
    # --- inputs: texts with nothing to grade -----------------------------------------
    "inputs/nulls_only.jsonl": '{"id": 1, "response": null}\n{"id": 2, "response": null}\n',
    "inputs/whitespace_only.csv": 'id,response\n1,"   "\n2,"\t"\n3,""\n',
    "inputs/parquet_garbage.parquet": b"PAR1 this is not a parquet file PAR1",
    # --- inputs that are valid and must be read correctly ----------------------------
    "good/bom.csv": b"\xef\xbb\xbfid,response\n1,caf\xc3\xa9\n2,plain\n",
    "good/crlf.csv": b'id,response\r\n1,"two\r\nlines"\r\n2,b\r\n',
    "good/mixed_line_ends.tsv": b"id\tresponse\r\n1\ta\n2\tb\r\n3\tc\n",
    "good/bom.jsonl": b'\xef\xbb\xbf{"response": "a"}\n{"response": "b"}\n',
    "good/quote_in_unquoted_field.csv": 'id,response\n1,he said "hi" twice\n2,b\n',
    "good/embedded_nul.csv": b"id,response\n1,fine\n2,nul\x00inside\n",
    "good/bom.json": b'\xef\xbb\xbf[{"response": "a"}, {"response": "b"}]\n',
    "good/mixed/a.csv": "id,response\n1,graded from a folder\n",
    "good/mixed/b.jsonl": '{"response": "also graded"}\n',
    "good/mixed/notes.txt": "not an input\n",
    "good/mixed/README.md": "# not an input\n",
    "good/mixed/image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    # --- settings files --------------------------------------------------------------
    "config/bad_toml.toml": "[request\nmodel = 'gpt-4.1-mini'\n",
    "config/unknown_key.toml": "[request]\nmodle = 'gpt-4.1-mini'\n",
    "config/unknown_section.toml": "[requests]\nmodel = 'gpt-4.1-mini'\n",
    "config/wrong_type.toml": "[chunking]\nsplit_row_limit = 'lots'\n",
    "config/negative_value.toml": "[chunking]\nsplit_token_limit = -5\n",
    "config/bad_endpoint.toml": "[request]\nendpoint = '/v1/embeddings'\n",
    "config/unknown_model.toml": "[request]\nmodel = 'gpt-unknown-9000'\n",
    "config/section_is_scalar.toml": "request = 'gpt-4.1-mini'\n",
    "config/latin1.toml": b"[request]\nmodel = 'caf\xe9'\n",
    # --- prompt files ----------------------------------------------------------------
    "prompts/unknown_placeholder.toml": (
        'system = "Grade it."\nuser = "Text: {text} Topic: {topic}"\n'
    ),
    "prompts/bad_toml.toml": 'system = "Grade it.\nuser = "{text}"\n',
    "prompts/system_not_string.toml": 'system = 3\nuser = "{text}"\n',
    "prompts/unknown_key.toml": 'system = "Grade it."\nuser = "{text}"\ntemperature = 0.5\n',
    "prompts/bad_scale.toml": 'system = "Grade."\nuser = "{text}"\nscale = { min = 5, max = 1 }\n',
    "prompts/scale_not_int.toml": (
        'system = "Grade."\nuser = "{text}"\nscale = { min = "a", max = 5 }\n'
    ),
    "prompts/format_spec.toml": 'system = "Grade it."\nuser = "{text:>20}"\n',
    "prompts/unbalanced_brace.toml": 'system = "Answer as {\\"score\\": N"\nuser = "{text}"\n',
    "prompts/reasoning_not_bool.toml": 'system = "Grade."\nuser = "{text}"\nreasoning = "yes"\n',
    "prompts/bad_schema.toml": 'system = "Grade."\nuser = "{text}"\n[schema]\ntype = "array"\n',
    "prompts/examples_without_file.toml": 'system = "Like {dynamic_examples}"\nuser = "{text}"\n',
}


def parquet_bytes(df: pl.DataFrame) -> bytes:
    """A small Parquet file as bytes."""
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    return buffer.getvalue()


def parquet_files() -> dict[str, bytes]:
    """The Parquet cases, built with polars (binary, so not in FILES)."""
    return {
        "inputs/int_text.parquet": parquet_bytes(
            pl.DataFrame({"id": [1, 2], "response": [10, 20]})
        ),
        "inputs/list_text.parquet": parquet_bytes(pl.DataFrame({"response": [["a"], ["b"]]})),
        "inputs/no_rows.parquet": parquet_bytes(
            pl.DataFrame(schema={"id": pl.Int64, "response": pl.String})
        ),
    }


def build(root: Path = HERE) -> list[Path]:
    """Write every corpus file under ``root``; returns their paths."""
    written = []
    for name, content in {**FILES, **parquet_files()}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(HERE))  # noqa: T201
