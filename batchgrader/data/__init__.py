"""Data files: formats, reading and validating input, writing tables, atomic writes."""
