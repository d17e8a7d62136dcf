"""C libraries reached through ctypes, loaded on first use and only once.

A :class:`CLibrary` names a shared library by its soname and declares the
prototypes of the functions broadcaster calls.  The first :meth:`CLibrary.load`
opens it; later calls return the same handle, or, if it could not be opened
(not installed, or without a declared function), None at once, with
:attr:`CLibrary.error` saying why.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)


class CLibrary:
    """A shared library with its prototypes declared, or the reason it cannot be used.

    ``declare`` sets ``restype``/``argtypes`` on the loaded library (an
    :class:`AttributeError` there means a function is missing: the library is
    then unusable).  ``without`` says what broadcaster does without it, for the
    one log line that reports a failed load.
    """

    def __init__(self, soname: str, declare: Callable[[ctypes.CDLL], None], without: str) -> None:
        self.soname = soname
        self._declare = declare
        self._without = without
        self._lib: ctypes.CDLL | None = None
        self.error: str | None = None
        """Why the library could not be loaded; None while it is loaded or not tried yet."""

    def load(self) -> ctypes.CDLL | None:
        """The library, loaded and declared on the first call; None if it cannot be."""
        if self._lib is None and self.error is None:
            try:
                lib = ctypes.CDLL(self.soname)
                self._declare(lib)
            except (OSError, AttributeError) as err:
                self.error = str(err)
                _LOGGER.info("%s not usable (%s): %s", self.soname, err, self._without)
            else:
                self._lib = lib
        return self._lib
