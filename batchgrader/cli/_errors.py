"""The one error boundary: batchgrader errors become messages and exit codes.

Known errors print ``Error:`` and ``Hint:`` lines on stderr (or a JSON envelope on
stdout in ``--json`` mode, usage errors included) and exit with the error's code.
SIGTERM is handled as Ctrl-C is (the same message: state saved, how to resume) and
exits 143. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import tidy, tidy_own
from batchgrader.errors import BatchgraderError, Interrupted, storage_error
from batchgrader.masking import hide

log = logging.getLogger("batchgrader.cli")


def report(app: AppContext, exc: BatchgraderError) -> None:
    """Show one error the way the mode asks for (the API keys masked, wherever they are)."""
    from rich.markup import escape  # rich is loaded when there is something to show

    for secret in app.secrets:
        for name in ("message", "hint"):
            text = getattr(exc, name)
            if text:
                setattr(exc, name, hide(text, secret))
        exc.args = (exc.message,)
    log.debug("error %s", exc.code, exc_info=exc if app.debug else None)
    if app.json_mode:
        typer.echo(envelope(exc.code, exc.message, exc.hint))
        return
    if app.debug:
        app.err.print_exception(show_locals=False)
    app.err.print(f"[bold red]Error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        app.err.print(f"[bold]Hint:[/] {escape(exc.hint)}", highlight=False)
    if app.log_file is not None and exc.exit_code == 1:
        app.err.print(f"Log: {app.log_file}", highlight=False)


def envelope(code: str, message: str, hint: str | None) -> str:
    """The ``--json`` error document (docs/json.md)."""
    from batchgrader.cli import _json

    return _json.dumps({"error": {"code": code, "message": message, "hint": hint}})


# --- SIGTERM --------------------------------------------------------------------------

#: Exit code of a run stopped by SIGTERM (128 + 15, as a shell reports it).
TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised where the program is, as Ctrl-C raises KeyboardInterrupt,
    so the same clean-up runs and the same message is printed."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends at once
    raise Terminated


def handle_sigterm() -> None:
    """Treat SIGTERM as Ctrl-C (called by ``main``, never at import)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _terminated(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Terminated):
            return True
        seen = seen.__context__
    return False


#: Option spellings rewritten before parsing: ``--retry-failed=all`` reads naturally
#: but a click flag takes no value.
_ALIASES = {
    "--retry-failed=all": ["--retry-failed", "--retry-all-errors"],
    "--retry-failed=failed": ["--retry-failed"],
}


class BoundaryGroup(TyperGroup):
    """Root group: maps ``BatchgraderError`` (and SIGTERM, and, with ``--json``, usage
    errors) to messages and exit codes, and tidies every command's help and options."""

    json_requested = False

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        ours = argv[: argv.index("--")] if "--" in argv else argv
        self.json_requested = "--json" in ours
        tidy_own(self, self.context_settings.get("help_option_names", ["--help"]))
        return super().main(argv, *rest, **extra)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            tidy(command, ctx.help_option_names)
        return name, command, rest

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten = [part for arg in args for part in _ALIASES.get(arg, [arg])]
        try:
            return super().parse_args(ctx, rewritten)
        except click.exceptions.UsageError as exc:
            self._usage(exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.UsageError as exc:
            self._usage(exc)
            raise
        except BatchgraderError as exc:
            report(AppContext.of(ctx), exc)
            code = TERMINATED if _terminated(exc) else exc.exit_code
            raise typer.Exit(code) from None
        except KeyboardInterrupt as exc:  # outside a run: nothing was left half done
            stopped = Interrupted("Terminated." if _terminated(exc) else "Interrupted.")
            report(AppContext.of(ctx), stopped)
            raise typer.Exit(TERMINATED if _terminated(exc) else stopped.exit_code) from None
        except Exception as exc:  # a full or read-only disk is not a bug; the rest are
            known = storage_error(exc)
            if known is None:
                raise
            report(AppContext.of(ctx), known)
            raise typer.Exit(known.exit_code) from None

    def _usage(self, exc: click.exceptions.UsageError) -> None:
        """With --json, a usage error is the JSON error envelope on stdout (exit 2)."""
        if not self.json_requested or isinstance(exc, click.exceptions.NoArgsIsHelpError):
            return
        hint = f"{exc.ctx.command_path} --help shows the options." if exc.ctx else None
        typer.echo(envelope("usage", exc.format_message(), hint))
        raise typer.Exit(exc.exit_code) from None
