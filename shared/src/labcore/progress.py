"""Progress bars and progress lines for library code, on stderr.

Library code (engines, training loops, benchmarks) shows progress through this module and never
imports the CLI. Whether anything is shown is decided by an explicit ``enabled`` argument and by
the surrounding context, :func:`progress_enabled`, which a CLI sets around the command it runs
(``-q`` turns it off). There is no module-level switch to flip: the setting lives in a
:class:`contextvars.ContextVar`, so it is scoped to the ``with`` block and to the thread or task
that entered it.

Examples
--------
>>> from labcore.progress import progress_bar, progress_enabled, status
>>> with progress_enabled(False):
...     total = sum(progress_bar(range(4), desc="sum"))
...     status("not shown")
>>> total
6
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

_ENABLED: ContextVar[bool] = ContextVar("labcore_progress_enabled", default=True)


@contextlib.contextmanager
def progress_enabled(enabled: bool) -> Iterator[None]:
    """Within the block, show progress bars and status lines only if ``enabled``."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def is_progress_enabled() -> bool:
    """Whether the current context shows progress (True unless a caller turned it off)."""
    return _ENABLED.get()


def progress_bar(
    iterable: Iterable, *, desc: str = "", enabled: bool = True, total: int | None = None
):
    """Wrap ``iterable`` in a tqdm bar on stderr; the iterable itself when ``enabled`` is False
    or the context turned progress off."""
    if not (enabled and _ENABLED.get()):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


def status(message: str) -> None:
    """Print one progress line on stderr (never stdout, which stays machine-readable)."""
    if _ENABLED.get():
        print(message, file=sys.stderr, flush=True)
