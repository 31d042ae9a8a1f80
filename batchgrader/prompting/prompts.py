"""Prompts: a system and a user template, a score scale and the answer's schema.

Templates use ``{name}`` placeholders (``{{`` and ``}}`` for literal braces):

- ``{text}`` is always the graded column (``request.response_field`` / ``--column``);
- ``{dynamic_examples}`` is the content of the examples file;
- any other ``{column}`` is that input column of the row.

Rendering is done by polars expressions over a whole batch of rows at once; the result
is ``template.format(**row)`` with every value as polars writes it as text: nulls are
empty strings and booleans ``true`` / ``false``.
"""

from __future__ import annotations

import json
import logging
import string
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from batchgrader.errors import PromptError

log = logging.getLogger(__name__)

TEXT = "text"
EXAMPLES = "dynamic_examples"
DEFAULT_USER = "Please evaluate the following text: {text}"


@dataclass(frozen=True)
class Template:
    """A parsed template: literal parts and placeholder names, alternating."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, source: str, where: str) -> Template:
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as exc:
            raise PromptError(
                f"{where}: {exc}.", hint="Write literal braces as {{ and }}."
            ) from None
        for literal, name, spec, conversion in parsed:
            if name is not None and (spec or conversion or not name.strip()):
                raise PromptError(
                    f"{where}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not a plain column name.",
                    hint="Use {column}; write literal braces as {{ and }}.",
                )
            parts.append((literal, name))
        return cls(source, tuple(parts))

    @property
    def placeholders(self) -> list[str]:
        return [name for _, name in self.parts if name is not None]

    @property
    def is_constant(self) -> bool:
        """True when the template uses no row value ({dynamic_examples} is constant)."""
        return all(name in (None, EXAMPLES) for _, name in self.parts)

    def render(self, values: dict[str, str]) -> str:
        """Render one row the plain way (reference implementation for the tests)."""
        return "".join(literal + (values[name] if name else "") for literal, name in self.parts)

    def expr(self, text_column: str, examples: str) -> pl.Expr:
        """A polars expression rendering the template for every row of a frame."""
        pieces: list[pl.Expr] = []
        for literal, name in self.parts:
            if literal:
                pieces.append(pl.lit(literal, dtype=pl.String))
            if name == EXAMPLES:
                pieces.append(pl.lit(examples, dtype=pl.String))
            elif name is not None:
                column = text_column if name == TEXT else name
                pieces.append(pl.col(column).cast(pl.String).fill_null(""))
        if not pieces:
            return pl.lit("", dtype=pl.String)
        return pl.concat_str(pieces)


@dataclass(frozen=True)
class Scale:
    """The judge's score range."""

    min: int = 1
    max: int = 5


@dataclass(frozen=True)
class Prompt:
    """Everything that shapes the judge's messages and the expected answer."""

    name: str
    system: Template
    user: Template
    scale: Scale = Scale()
    reasoning: bool = False
    schema: dict[str, Any] | None = None
    examples: str = ""
    warnings: tuple[str, ...] = field(default=())

    def with_instruction(self, instruction: str) -> Prompt:
        """This prompt with ``instruction`` appended to its system message."""
        literal = instruction.replace("{", "{{").replace("}", "}}")
        source = f"{self.system.source}\n\n{literal}" if self.system.source else literal
        return replace(self, system=Template.parse(source, "system template"))

    def columns(self, text_column: str) -> list[str]:
        """Input columns the templates read, the graded column first."""
        names = [text_column]
        for name in self.system.placeholders + self.user.placeholders:
            column = text_column if name == TEXT else name
            if name != EXAMPLES and column not in names:
                names.append(column)
        return names

    def answer_schema(self) -> dict[str, Any]:
        """The JSON schema the judge's answer must follow (strict structured output)."""
        if self.schema is not None:
            return self.schema
        properties: dict[str, Any] = {}
        if self.reasoning:
            properties["reasoning"] = {"type": "string"}
        properties["score"] = {
            "type": "integer",
            "minimum": self.scale.min,
            "maximum": self.scale.max,
        }
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }


_GENERIC_SYSTEM = (
    "You are an impartial judge. Rate the overall quality of the text you are given "
    "on a scale of {min} to {max}, where {min} is very poor and {max} is excellent. "
    "Consider clarity, correctness, completeness and relevance. "
    "Answer with the score only."
)
_STYLE_SYSTEM = (
    "You are an impartial judge of writing style. Here are examples of the target "
    "style:\n\n{{dynamic_examples}}\n\n"
    "Rate how closely the text you are given matches the style of these examples, "
    "on a scale of {min} to {max}, where {min} is nothing alike and {max} is "
    "indistinguishable. Judge style only (tone, vocabulary, sentence structure, "
    "formatting), not content. Answer with the score only."
)
PRESETS: dict[str, str] = {"generic": _GENERIC_SYSTEM, "style-match": _STYLE_SYSTEM}


def preset(name: str, scale: Scale = Scale()) -> tuple[Template, Template]:
    """The system and user templates of a built-in preset."""
    system = PRESETS[name].format(min=scale.min, max=scale.max)
    return (
        Template.parse(system, f"preset {name}"),
        Template.parse(DEFAULT_USER, f"preset {name}"),
    )


def load_prompt(
    spec: str | None,
    examples_file: Path | None,
    schema_file: Path | None = None,
) -> Prompt:
    """Resolve ``--prompt`` (preset name or TOML file) and the examples file.

    With no prompt, ``style-match`` is used when an examples file is given, else
    ``generic``.
    """
    examples = _read_examples(examples_file)
    fallback_name = "style-match" if examples_file is not None else "generic"
    if spec is None or spec in PRESETS:
        name = spec or fallback_name
        system, user = preset(name)
        prompt = Prompt(name=name, system=system, user=user, examples=examples)
    else:
        prompt = _load_prompt_file(Path(spec), fallback_name, examples)
    if schema_file is not None:
        prompt = replace(prompt, schema=_read_schema(schema_file))
    if EXAMPLES in prompt.system.placeholders + prompt.user.placeholders and not examples:
        raise PromptError(
            f"The prompt '{prompt.name}' uses {{dynamic_examples}} but no examples file was given.",
            hint="Pass --examples FILE (or set request.examples_file).",
        )
    return prompt


def check_placeholders(prompt: Prompt, columns: tuple[str, ...], path: Path) -> None:
    """Every placeholder must name a column of the file (or a special placeholder)."""
    for where, template in (("system", prompt.system), ("user", prompt.user)):
        for name in template.placeholders:
            if name not in (TEXT, EXAMPLES) and name not in columns:
                raise PromptError(
                    f"The {where} template of prompt '{prompt.name}' uses {{{name}}}, "
                    f"which is not a column of {path}.",
                    hint="Columns: " + ", ".join(columns) + "; also {text}, "
                    "{dynamic_examples}; write literal braces as {{ and }}.",
                )


def _read_examples(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"Examples file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"Examples file {path} cannot be read: {exc}.") from None


def _read_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptError(f"Schema file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptError(f"Schema file {path} is not valid JSON: {exc}.") from None
    return validate_schema(schema, str(path))


def validate_schema(schema: Any, where: str) -> dict[str, Any]:
    """An answer schema must be an object schema with at least one property."""
    if (
        not isinstance(schema, dict)
        or schema.get("type") != "object"
        or not isinstance(schema.get("properties"), dict)
        or not schema["properties"]
    ):
        raise PromptError(
            f"{where}: the answer schema must be a JSON schema of type 'object' with 'properties'."
        )
    for name, prop in schema["properties"].items():
        if not isinstance(prop, dict):
            raise PromptError(f"{where}: property '{name}' must be an object.")
    checked: dict[str, Any] = dict(schema)
    checked.setdefault("required", list(checked["properties"]))
    checked.setdefault("additionalProperties", False)
    return checked


def _load_prompt_file(path: Path, fallback_name: str, examples: str) -> Prompt:
    if not path.is_file():
        raise PromptError(
            f"Prompt '{path}' is neither a preset nor an existing file.",
            hint="Presets: " + ", ".join(PRESETS) + "; or pass a TOML prompt file.",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PromptError(f"Prompt file {path} is not valid TOML: {exc}.") from None
    known = {"system", "user", "scale", "reasoning", "schema", "name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PromptError(
            f"Prompt file {path}: unknown key '{unknown[0]}'.",
            hint="Keys: " + ", ".join(sorted(known)) + ".",
        )
    scale = _parse_scale(data.get("scale"), path)
    default_system, default_user = preset(fallback_name, scale)
    warnings: list[str] = []
    templates: dict[str, Template] = {}
    for key, default in (("system", default_system), ("user", default_user)):
        value = data.get(key)
        if value is None:
            message = f"Prompt file {path} has no '{key}'; using the {fallback_name} preset's."
            log.warning(message)
            warnings.append(message)
            templates[key] = default
        elif not isinstance(value, str):
            raise PromptError(f"Prompt file {path}: '{key}' must be a string.")
        else:
            templates[key] = Template.parse(value, f"{path} ({key})")
    reasoning = data.get("reasoning", False)
    if not isinstance(reasoning, bool):
        raise PromptError(f"Prompt file {path}: 'reasoning' must be true or false.")
    schema = data.get("schema")
    if schema is not None:
        schema = validate_schema(schema, f"{path} (schema)")
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise PromptError(f"Prompt file {path}: 'name' must be a string.")
    return Prompt(
        name=name,
        system=templates["system"],
        user=templates["user"],
        scale=scale,
        reasoning=reasoning,
        schema=schema,
        examples=examples,
        warnings=tuple(warnings),
    )


def _parse_scale(value: Any, path: Path) -> Scale:
    if value is None:
        return Scale()
    if (
        not isinstance(value, dict)
        or set(value) - {"min", "max"}
        or not all(isinstance(value.get(k, 0), int) for k in ("min", "max"))
    ):
        raise PromptError(f"Prompt file {path}: 'scale' must be {{ min = INT, max = INT }}.")
    scale = Scale(value.get("min", 1), value.get("max", 5))
    if scale.min >= scale.max:
        raise PromptError(f"Prompt file {path}: scale min must be below max.")
    return scale
