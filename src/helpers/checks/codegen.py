"""Checkers for the fine-tuning lessons (being written)."""

__all__: list[str] = []
