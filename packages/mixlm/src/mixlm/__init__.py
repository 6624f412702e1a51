"""MixLM: LLM ranking with text-embedding mix-interaction."""

__version__ = "0.1.0"
