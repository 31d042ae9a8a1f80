"""Prompts and requests: templates, request options, the judge's answer, the model
catalogue (``models.csv``) and the rules it drives, offline tokenizing."""
