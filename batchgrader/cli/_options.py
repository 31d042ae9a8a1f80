"""Options shared by several commands, defined once."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import typer.main
from typer import _click as click
from typer.core import TyperArgument, TyperGroup, TyperOption

from batchgrader.cli._context import AppContext
from batchgrader.providers.names import ProviderName

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Submit even over a budget limit, without asking.")
]
FilesArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="FILE",
        help="Input files or folders (default: the configured input_dir).",
        show_default=False,
    ),
]
ColumnOption = Annotated[
    str | None,
    typer.Option(
        "--column",
        "-c",
        metavar="COLUMN",
        help="Column holding the text to grade (request.response_field).",
    ),
]
PromptOption = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        metavar="NAME|FILE",
        help="Prompt preset name or prompt TOML file (request.prompt).",
    ),
]
ExamplesOption = Annotated[
    Path | None,
    typer.Option(
        "--examples",
        metavar="FILE",
        help="Examples file for {dynamic_examples} (request.examples_file).",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="MODEL", help="Judge model (request.model)."),
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
    typer.Option(
        "--endpoint",
        metavar="PATH",
        help="/v1/chat/completions or /v1/responses (request.endpoint).",
    ),
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        metavar="N",
        help="Max output tokens per response (request.max_tokens_per_response).",
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help="Input format (csv, tsv, json, jsonl, parquet); default by extension.",
    ),
]
SchemaOption = Annotated[
    Path | None,
    typer.Option(
        "--schema",
        metavar="FILE",
        help="JSON schema of the judge's answer; each field becomes a column.",
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
        metavar="N",
        help="Output tokens per row for the expected cost (request.expected_output_tokens).",
    ),
]


PilotOption = Annotated[
    int | None,
    typer.Option(
        "--pilot",
        min=0,
        metavar="N",
        help="First send N sampled rows directly and check that their answers parse "
        "(run.pilot_rows; needs an API key).",
        show_default=False,
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


# --- global options: before or after the command (``batchgrader -q grade`` = ``grade -q``)


def _quiet(ctx: typer.Context, value: bool) -> None:
    if value:
        AppContext.of(ctx).verbosity = -1


def _verbose(ctx: typer.Context, value: int) -> None:
    app = AppContext.of(ctx)
    if value and app.verbosity >= 0:  # --quiet wins wherever it is
        app.verbosity = max(app.verbosity, value)


def _debug(ctx: typer.Context, value: bool) -> None:
    if value:
        AppContext.of(ctx).debug = True


GLOBAL = "Global options"
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Only errors on stderr.",
        callback=_quiet,
        expose_value=False,
        rich_help_panel=GLOBAL,
    ),
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        help="More log output (-vv: debug).",
        callback=_verbose,
        expose_value=False,
        rich_help_panel=GLOBAL,
    ),
]
DebugOption = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show tracebacks and debug logs.",
        callback=_debug,
        expose_value=False,
        rich_help_panel=GLOBAL,
    ),
]


def _global_options() -> list[click.Parameter]:
    """The global options as parameters to give every command (built once per app)."""
    holder = typer.Typer()

    @holder.command()
    def options(
        quiet: QuietOption = False, verbose: VerboseOption = 0, debug: DebugOption = False
    ) -> None:
        """Holds the global options."""

    command = typer.main.get_command(holder)
    return [p for p in command.params if p.name in ("quiet", "verbose", "debug")]


# --- help that reads naturally --------------------------------------------------------

#: Value names shown in help for a type without a metavar of its own.
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH"}
_tidied: weakref.WeakSet[click.Command] = weakref.WeakSet()


class _Argument(TyperArgument):
    """An argument whose help shows its name (``FILE``) and no ``<list[Path]>`` type."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


def tidy(command: click.Command, help_names: Sequence[str]) -> None:
    """Make the help of ``command`` and its subcommands read naturally (see ``tidy_own``),
    and give each leaf command the global options (-q, -v, --debug) unless it has its own."""
    if command in _tidied:
        return
    _tidied.add(command)
    if isinstance(command, TyperGroup):
        tidy_own(command, help_names)
        for sub in command.commands.values():
            tidy(sub, help_names)
        return
    taken = {opt for p in command.params for opt in p.opts}
    command.params.extend(p for p in _global_options() if not taken & set(p.opts))
    tidy_own(command, help_names)


def tidy_own(command: click.Command, help_names: Sequence[str]) -> None:
    """Flags show no value (``--dry-run``, not ``--dry-run <bool>``), values show a name
    (``--rows N``; else ``TEXT``, ``INTEGER``, ``PATH``), arguments their name only."""
    ctx = typer.Context(command, help_option_names=list(help_names))
    for param in command.get_params(ctx):  # the help option too (created here, once)
        _natural(param, ctx)


def _natural(param: click.Parameter, ctx: click.Context) -> None:
    if isinstance(param, TyperOption) and param.metavar is None:
        if param.is_flag or param.count:
            param.metavar = ""
        else:
            label = param.display_type(ctx).strip("<>")
            param.metavar = _TYPE_NAMES.get(label, label)
    elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        param.__class__ = _Argument
