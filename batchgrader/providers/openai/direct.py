"""OpenAI's synchronous endpoints (Chat Completions, Responses) for direct mode, and
every compatible server's (vLLM, Ollama, llama.cpp, LM Studio, SGLang): plain HTTP
through ``JsonPoster``, without the SDK (providers/http.py says why)."""

from __future__ import annotations

import httpx2

from batchgrader import __version__
from batchgrader.errors import MissingApiKey
from batchgrader.providers.http import JsonPoster
from batchgrader.settings import ApiSettings


def openai_direct(api: ApiSettings, base_url: str, *, timeout: float) -> JsonPoster:
    """Calls to ``base_url`` (``api.base_url`` or OpenAI's) with the key, organization and
    project in force."""
    if api.key is None or not api.key.get_secret_value():
        raise MissingApiKey(
            "No API key: set OPENAI_API_KEY (or api.key in a settings file).",
            hint="A local server that wants no key takes any value, e.g. OPENAI_API_KEY=none.",
        )
    secret = api.key.get_secret_value()
    headers = {"authorization": f"Bearer {secret}", "user-agent": f"batchgrader/{__version__}"}
    if api.organization:
        headers["openai-organization"] = api.organization
    if api.project:
        headers["openai-project"] = api.project
    return JsonPoster(
        base_url,
        headers,
        timeout=timeout,
        secret=secret,
        limits=rate_limits,
        prefix="/v1",
    )


def rate_limits(headers: httpx2.Headers) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers, lower-cased."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
