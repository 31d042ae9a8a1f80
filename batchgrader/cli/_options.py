"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchgrader.settings import ProviderName

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Submit even over a budget limit, without asking.")
]
FilesArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Input files or folders (default: the configured input_dir).",
        show_default=False,
    ),
]
ColumnOption = Annotated[
    str | None,
    typer.Option(
        "--column", "-c", help="Column holding the text to grade (request.response_field)."
    ),
]
PromptOption = Annotated[
    str | None,
    typer.Option("--prompt", "-p", help="Prompt preset name or prompt TOML file (request.prompt)."),
]
ExamplesOption = Annotated[
    Path | None,
    typer.Option(
        "--examples", help="Examples file for {dynamic_examples} (request.examples_file)."
    ),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Judge model (request.model).")
]
ProviderOption = Annotated[
    ProviderName | None,
    typer.Option(
        "--provider",
        help="Who answers: openai or anthropic (request.provider; auto: anthropic for "
        "claude* models).",
        show_default=False,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint", help="/v1/chat/completions or /v1/responses (request.endpoint)."),
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens", help="Max output tokens per response (request.max_tokens_per_response)."
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", help="Input format (csv, tsv, json, jsonl, parquet); default by extension."
    ),
]
SchemaOption = Annotated[
    Path | None,
    typer.Option(
        "--schema", help="JSON schema of the judge's answer; each field becomes a column."
    ),
]
FailOnEmptyOption = Annotated[
    bool, typer.Option("--fail-on-empty", help="Treat empty or null texts as an error.")
]
AllowUnpricedOption = Annotated[
    bool,
    typer.Option("--allow-unpriced", help="Run with a model that has no price (costs unknown)."),
]
ExpectedOutputOption = Annotated[
    int | None,
    typer.Option(
        "--expected-output-tokens",
        help="Output tokens per row for the expected cost (request.expected_output_tokens).",
    ),
]


def request_overrides(
    *,
    column: str | None,
    prompt: str | None,
    examples: Path | None,
    model: str | None,
    endpoint: str | None,
    max_tokens: int | None,
    provider: str | None = None,
) -> dict[str, object]:
    """The request-shaping flags as dotted setting overrides (None = not given)."""
    return {
        "request.provider": provider,
        "request.response_field": column,
        "request.prompt": prompt,
        "request.examples_file": examples,
        "request.model": model,
        "request.endpoint": endpoint,
        "request.max_tokens_per_response": max_tokens,
    }
