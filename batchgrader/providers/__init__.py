"""Providers: the seam (``base``) and one package per service (``openai``, ``anthropic``).

Only a provider's ``client`` module imports its SDK (the Batch APIs); its ``direct``
module sends synchronous calls over plain HTTP through ``http.JsonPoster`` (direct mode).
``frames`` builds request lines byte-exactly; ``names`` and ``registry`` pick the provider
of a run by name.
"""
