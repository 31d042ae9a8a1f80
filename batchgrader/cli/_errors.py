"""The one error boundary: batchgrader errors become messages and exit codes.

Known errors print ``Error:`` and ``Hint:`` lines on stderr (or a JSON envelope on
stdout in ``--json`` mode) and exit with the error's code. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from batchgrader.cli._context import AppContext
from batchgrader.errors import BatchgraderError, storage_error
from batchgrader.masking import mask

log = logging.getLogger("batchgrader.cli")


def report(app: AppContext, exc: BatchgraderError) -> None:
    """Show one error the way the mode asks for (the API key masked, wherever it is)."""
    if app.secret:
        for name in ("message", "hint"):
            text = getattr(exc, name)
            if text and app.secret in text:
                setattr(exc, name, text.replace(app.secret, mask(app.secret)))
        exc.args = (exc.message,)
    log.debug("error %s", exc.code, exc_info=exc if app.debug else None)
    if app.json_mode:
        envelope = {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}
        typer.echo(json.dumps(envelope, indent=2))
        return
    if app.debug:
        app.err.print_exception(show_locals=False)
    app.err.print(f"[bold red]Error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        app.err.print(f"[bold]Hint:[/] {escape(exc.hint)}", highlight=False)
    if app.log_file is not None and exc.exit_code == 1:
        app.err.print(f"Log: {app.log_file}", highlight=False)


#: Option spellings rewritten before parsing: ``--retry-failed=all`` reads naturally
#: but a click flag takes no value.
_ALIASES = {
    "--retry-failed=all": ["--retry-failed", "--retry-all-errors"],
    "--retry-failed=failed": ["--retry-failed"],
}


class BoundaryGroup(TyperGroup):
    """Root group whose invoke maps ``BatchgraderError`` to its exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten = [part for arg in args for part in _ALIASES.get(arg, [arg])]
        return super().parse_args(ctx, rewritten)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BatchgraderError as exc:
            report(AppContext.of(ctx), exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # a full or read-only disk is not a bug; the rest are
            known = storage_error(exc)
            if known is None:
                raise
            report(AppContext.of(ctx), known)
            raise typer.Exit(known.exit_code) from None
