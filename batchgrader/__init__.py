"""BatchGrader: grade big files of texts with an LLM judge through a provider's
Batch API (OpenAI, Anthropic, compatible servers) or directly with bounded concurrent calls."""


def __getattr__(name: str) -> str:
    # __version__ is read from the installed metadata when asked for: importlib.metadata
    # costs more than the rest of ``batchgrader --help``'s own imports.
    if name == "__version__":
        from importlib.metadata import version

        return version("batchgrader")
    raise AttributeError(f"module 'batchgrader' has no attribute {name!r}")
