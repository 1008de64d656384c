"""Exceptions raised by strata: every one is a :class:`StrataError`."""


class StrataError(Exception):
    """Any error of a strata store."""


class InvalidArgument(StrataError, ValueError):
    """A call's input was refused (wrong shape or dimension, bad filter, key, metric...)."""


class Corruption(StrataError):
    """A store file is damaged; the message names the file and the offset."""


class Locked(StrataError):
    """Another process (or handle) has the store open for writing."""


class NotFound(StrataError, FileNotFoundError):
    """No store at the path (open it with a ``dim`` to create one)."""


class IoError(StrataError, OSError):
    """The operating system refused a read or a write."""


class Closed(StrataError):
    """The store was closed."""


class Poisoned(StrataError):
    """An earlier write failed half-way; reopen the store to recover."""


__all__ = [
    "StrataError",
    "InvalidArgument",
    "Corruption",
    "Locked",
    "NotFound",
    "IoError",
    "Closed",
    "Poisoned",
]
