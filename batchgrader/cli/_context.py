"""Per-invocation state shared by the root callback and the commands."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # loaded by the commands that use them, not by --help or a TAB
    from pydantic import BaseModel
    from rich.console import Console, RenderableType

    from batchgrader.settings.loading import LoadedSettings


@dataclass
class AppContext:
    """Global options plus the consoles; stored on the root ``ctx.obj``."""

    config_file: Path | None = None
    verbosity: int = 0  # -1 quiet, 0 normal, 1 verbose, 2 debug
    debug: bool = False
    json_mode: bool = False
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))
    log_file: Path | None = None
    secrets: tuple[str, ...] = ()  # the API keys set, kept out of every message

    @classmethod
    def of(cls, ctx: typer.Context) -> AppContext:
        """The AppContext of the running command (created by the root callback)."""
        root = ctx.find_root()
        if not isinstance(root.obj, AppContext):
            root.obj = cls()
        return root.obj

    def load(self, overrides: Mapping[str, Any] | None = None) -> LoadedSettings:
        """Load settings with this command's flags and start the run's log."""
        from batchgrader import logs
        from batchgrader.settings.loading import load_settings

        loaded = load_settings(overrides, self.config_file)
        settings = loaded.settings
        keys = (settings.api.key, settings.anthropic.key)
        self.secrets = tuple(k.get_secret_value() for k in keys if k is not None)
        self.log_file = logs.setup(
            console=self.err,
            console_level=self.console_log_level,
            log_dir=settings.log_dir(),
            max_logs=settings.logging.max_logs,
            file_level=logging.DEBUG if self.debug else getattr(logging, settings.logging.level),
            secrets=self.secrets,
        )
        return loaded

    @property
    def console_log_level(self) -> int:
        if self.debug or self.verbosity >= 2:
            return logging.DEBUG
        if self.verbosity == 1:
            return logging.INFO
        if self.verbosity < 0:
            return logging.ERROR
        return logging.WARNING

    def emit(self, result: BaseModel, render: Callable[[Any], RenderableType]) -> None:
        """Print a result: JSON on stdout in --json mode (docs/json.md), else its rendering:
        tables fitted to a terminal, or plain lines when stdout is not one."""
        if self.json_mode:
            from batchgrader.cli import _json

            typer.echo(_json.dumps(result))
        else:
            show(self.out, render(result))

    def line(self, message: str) -> None:
        """One plain line for people (stderr): no markup, never wrapped or cut (a command
        to copy); silenced like ``note``."""
        if self.verbosity >= 0 and not self.json_mode:
            self.err.print(message, highlight=False, markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """A message for people (stderr), silenced by --quiet and in --json mode."""
        if self.verbosity >= 0 and not self.json_mode:
            self.err.print(message, highlight=False)


def show(console: Console, renderable: RenderableType) -> None:
    """Print a rendering: wrapped to a terminal's width (ids and paths never cut; the
    lines holding them are never cropped), unwrapped plain lines anywhere else."""
    console.print(renderable, crop=False, soft_wrap=not console.is_terminal)


def _console(*, stderr: bool) -> Console:
    from rich.console import Console  # rich is loaded by a command, not by a TAB

    return Console(stderr=True) if stderr else Console()
