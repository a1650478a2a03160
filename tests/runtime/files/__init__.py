"""Fixtures of the file step tests: files made by other programs, and helpers."""
