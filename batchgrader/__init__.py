"""BatchGrader: grade big files of texts with an LLM judge through the OpenAI Batch API."""

from importlib.metadata import version

__version__ = version("batchgrader")
