"""The one exception type raised on bad data input."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad data on disk or a bad data argument.

    Raised for a missing root, a root without machine folders, a machine without training
    clips, an undecodable or empty WAV, an unparseable DCASE file name or an unreadable CSV.
    The message always names the file or folder concerned and says what was expected.
    Being a ``ValueError``, it can be caught as one.
    """
