"""Prompts: templates, presets, prompt files, examples and answer schemas (prompts.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgrader.errors import PromptError
from batchgrader.prompting.prompts import (
    PRESETS,
    Prompt,
    Scale,
    Template,
    check_placeholders,
    load_prompt,
)
from tests.helpers import write_prompt


class TestTemplate:
    """Parsing and rendering of ``{column}`` templates."""

    def test_placeholders_in_order(self) -> None:
        """Placeholders are listed in the order they appear, repeats included."""
        t = Template.parse("Q: {question}\nA: {text}\nQ again: {question}", "t")
        assert t.placeholders == ["question", "text", "question"]

    def test_escaped_braces_are_literal(self) -> None:
        """``{{`` and ``}}`` render as literal braces and are not placeholders."""
        t = Template.parse('Answer as {{"score": n}} for {text}', "t")
        assert t.placeholders == ["text"]
        assert t.render({"text": "x"}) == 'Answer as {"score": n} for x'

    def test_render_equals_str_format(self) -> None:
        """Rendering is exactly ``str.format`` with the row's values."""
        source = "{{a}} {q}: {text}, {q}{{}}"
        values = {"q": "Why?", "text": "Because {braces} stay"}
        assert Template.parse(source, "t").render(values) == source.format(**values)

    @pytest.mark.parametrize(
        "source",
        ["{a:>10}", "{a!r}", "{}", "{ }", "x{ }x"],
    )
    def test_non_plain_placeholders_are_rejected(self, source: str) -> None:
        """Format specs, conversions and empty names are errors with a hint."""
        with pytest.raises(PromptError, match="is not a plain column name") as info:
            Template.parse(source, "prompt.toml (user)")
        assert info.value.message.startswith("prompt.toml (user): ")

    @pytest.mark.parametrize("source", ["an { unclosed", "a } stray", "{a"])
    def test_unbalanced_braces_are_rejected(self, source: str) -> None:
        """A lone brace is an error that tells how to write a literal one."""
        with pytest.raises(PromptError) as info:
            Template.parse(source, "t")
        assert info.value.hint is not None and "{{" in info.value.hint

    def test_constant_template(self) -> None:
        """A template using only ``{dynamic_examples}`` is constant across rows."""
        assert Template.parse("Examples: {dynamic_examples}", "t").is_constant
        assert not Template.parse("About {topic}", "t").is_constant

    @given(
        literal=st.text(max_size=20).map(lambda s: s.replace("{", "{{").replace("}", "}}")),
        cells=st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=6),
        answers=st.lists(st.text(max_size=30), min_size=1, max_size=6),
    )
    def test_polars_expr_equals_render(
        self, literal: str, cells: list[str | None], answers: list[str]
    ) -> None:
        """The vectorised expression renders every row exactly like ``render``."""
        n = min(len(cells), len(answers))
        frame = pl.DataFrame(
            {"topic": cells[:n], "answer": answers[:n]},
            schema={"topic": pl.String, "answer": pl.String},
        )
        t = Template.parse(literal + "{topic}|{text}|{dynamic_examples}" + literal, "t")
        got = frame.select(t.expr("answer", "EX")).to_series().to_list()
        want = [
            t.render({"topic": c or "", "text": a, "dynamic_examples": "EX"})
            for c, a in zip(cells[:n], answers[:n], strict=True)
        ]
        assert got == want


class TestPresets:
    """The built-in prompts."""

    def test_generic_needs_no_examples(self) -> None:
        """``generic`` grades ``{text}`` on 1-5 and uses no examples."""
        prompt = load_prompt("generic", None)
        assert prompt.name == "generic"
        assert prompt.user.placeholders == ["text"]
        assert "dynamic_examples" not in prompt.system.placeholders
        assert "1 to 5" in prompt.system.source

    def test_default_is_generic_without_examples(self) -> None:
        """With no prompt and no examples file, ``generic`` is used."""
        assert load_prompt(None, None).name == "generic"

    def test_default_is_style_match_with_examples(self, tmp_path: Path) -> None:
        """With an examples file and no prompt, ``style-match`` is used and filled in."""
        examples = tmp_path / "examples.txt"
        examples.write_text("Short. Punchy. {Braces} too.", encoding="utf-8")
        prompt = load_prompt(None, examples)
        assert prompt.name == "style-match"
        assert prompt.examples == "Short. Punchy. {Braces} too."
        system = prompt.system.render({"dynamic_examples": prompt.examples})
        assert "Short. Punchy. {Braces} too." in system

    def test_style_match_without_examples_is_an_error(self) -> None:
        """``style-match`` asks for an examples file."""
        with pytest.raises(PromptError, match=r"uses \{dynamic_examples\} but no examples file"):
            load_prompt("style-match", None)

    def test_missing_examples_file_is_an_error(self, tmp_path: Path) -> None:
        """An examples file that does not exist is named."""
        with pytest.raises(PromptError, match=r"Examples file .*nope\.txt does not exist"):
            load_prompt("style-match", tmp_path / "nope.txt")

    def test_unknown_name_is_an_error(self) -> None:
        """A name that is neither a preset nor a file lists the presets."""
        with pytest.raises(PromptError, match="neither a preset nor an existing file") as info:
            load_prompt("fancy", None)
        assert info.value.hint is not None
        assert all(name in info.value.hint for name in PRESETS)


class TestPromptFile:
    """Prompt TOML files: system, user, scale, reasoning, schema."""

    def test_full_file(self, tmp_path: Path) -> None:
        """Every key of a prompt file is read."""
        path = write_prompt(
            tmp_path / "grade.toml",
            system="Grade {topic} answers from {min_label}.",
            user="Q: {question}\nA: {text}",
            reasoning=True,
            scale={"min": 0, "max": 10},
        )
        prompt = load_prompt(str(path), None)
        assert prompt.name == "grade"
        assert prompt.scale == Scale(0, 10)
        assert prompt.warnings == ()
        assert prompt.columns("answer") == ["answer", "topic", "min_label", "question"]
        schema = prompt.answer_schema()
        assert schema["required"] == ["reasoning", "score"]
        assert schema["properties"]["score"] == {"type": "integer", "minimum": 0, "maximum": 10}
        assert schema["additionalProperties"] is False

    @pytest.mark.parametrize("missing", ["system", "user"])
    def test_missing_key_falls_back_with_warning(
        self, tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A prompt file lacking system or user uses the preset's, with a warning."""
        keys = {"system": "Judge kindly.", "user": "Text: {text}"}
        del keys[missing]
        path = write_prompt(tmp_path / "p.toml", **keys)
        with caplog.at_level(logging.WARNING, logger="batchgrader"):
            prompt = load_prompt(str(path), None)
        generic = load_prompt("generic", None)
        assert getattr(prompt, missing) == getattr(generic, missing)
        assert len(prompt.warnings) == 1
        assert f"has no '{missing}'; using the generic preset's" in prompt.warnings[0]
        assert prompt.warnings[0] in caplog.text

    def test_scale_reaches_the_fallback_system(self, tmp_path: Path) -> None:
        """The preset system a file falls back to uses the file's scale."""
        path = write_prompt(tmp_path / "p.toml", user="{text}", scale={"min": 1, "max": 10})
        prompt = load_prompt(str(path), None)
        assert "1 to 10" in prompt.system.source

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("system = ", "is not valid TOML"),
            ('systen = "x"', "unknown key 'systen'"),
            ("system = 3", "'system' must be a string"),
            ('user = "{text:>3}"', "is not a plain column name"),
            ('reasoning = "yes"', "'reasoning' must be true or false"),
            ("[scale]\nmin = 5\nmax = 1", "scale min must be below max"),
            ('[scale]\nmin = "low"', "'scale' must be"),
            ("[schema]\ntype = 'string'", "must be a JSON schema of type 'object'"),
        ],
    )
    def test_invalid_file(self, tmp_path: Path, content: str, message: str) -> None:
        """A broken prompt file is a PromptError naming the file."""
        path = tmp_path / "bad.toml"
        path.write_text(content + "\n", encoding="utf-8")
        with pytest.raises(PromptError, match=r"bad\.toml") as info:
            load_prompt(str(path), None)
        assert message in info.value.message

    def test_schema_table_in_file(self, tmp_path: Path) -> None:
        """A ``[schema]`` table becomes the strict answer schema."""
        path = tmp_path / "p.toml"
        path.write_text(
            'user = "{text}"\n[schema]\ntype = "object"\n'
            '[schema.properties.label]\ntype = "string"\nenum = ["spam", "ham"]\n',
            encoding="utf-8",
        )
        schema = load_prompt(str(path), None).answer_schema()
        assert schema == {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}},
            "required": ["label"],
            "additionalProperties": False,
        }


class TestSchemaFile:
    """``--schema FILE``: a JSON schema for the judge's answer."""

    def test_schema_file_overrides_the_scale_schema(self, tmp_path: Path) -> None:
        """The schema file replaces the default score schema, with strict defaults added."""
        path = tmp_path / "schema.json"
        path.write_text(
            json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}}),
            encoding="utf-8",
        )
        prompt = load_prompt("generic", None, path)
        assert prompt.answer_schema() == {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        }

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "does not exist"),
            ("{not json", "is not valid JSON"),
            ('{"type": "object", "properties": {}}', "of type 'object' with 'properties'"),
            ('{"type": "object", "properties": {"a": 1}}', "property 'a' must be an object"),
        ],
    )
    def test_bad_schema_file(self, tmp_path: Path, content: str | None, message: str) -> None:
        """A missing or invalid schema file is a PromptError naming the file."""
        path = tmp_path / "schema.json"
        if content is not None:
            path.write_text(content, encoding="utf-8")
        with pytest.raises(PromptError, match=r"schema\.json") as info:
            load_prompt("generic", None, path)
        assert message in info.value.message


class TestCheckPlaceholders:
    """Placeholders are checked against the file's columns before any work."""

    def test_known_columns_and_specials_pass(self, tmp_path: Path) -> None:
        """Columns of the file, ``{text}`` and ``{dynamic_examples}`` are accepted."""
        prompt = Prompt(
            name="p",
            system=Template.parse("{dynamic_examples} {topic}", "s"),
            user=Template.parse("{question} {text}", "u"),
        )
        check_placeholders(prompt, ("topic", "question", "answer"), tmp_path / "in.csv")

    @pytest.mark.parametrize("where", ["system", "user"])
    def test_unknown_column_is_named(self, tmp_path: Path, where: str) -> None:
        """An unknown placeholder names the template, the file and the file's columns."""
        templates = {"system": "Judge.", "user": "{text}"}
        templates[where] = "About {topik}: {text}"
        prompt = Prompt(
            name="mine",
            system=Template.parse(templates["system"], "s"),
            user=Template.parse(templates["user"], "u"),
        )
        with pytest.raises(PromptError) as info:
            check_placeholders(prompt, ("topic", "answer"), tmp_path / "in.csv")
        assert info.value.message == (
            f"The {where} template of prompt 'mine' uses {{topik}}, "
            f"which is not a column of {tmp_path / 'in.csv'}."
        )
        assert info.value.hint is not None and "topic, answer" in info.value.hint
