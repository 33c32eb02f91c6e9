"""Helpers every layer may use: atomic file writes and run folders, the progress bar.

Imports nothing of aedetect but ``aedetect.errors``.
"""
