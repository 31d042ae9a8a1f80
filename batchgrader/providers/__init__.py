"""Providers: the seam (``base``) and one package per service (``openai``, ``anthropic``).

Only a provider's ``client`` module imports its SDK; ``names`` and ``registry`` pick the
provider of a run by name.
"""
