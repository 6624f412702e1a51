"""HiGHS (highspy) instances that are safe to use from several packages in one process.

- ``HIGHS_LOCK``: one process-wide lock. HiGHS keeps a task scheduler in static state, and
  an instance destroyed while another runs on a different thread can tear it down; every
  package creates, runs and destroys its instances under this one lock (re-entrant, so a
  solver may nest calls).
- :func:`silent_highs`: an instance with output off. HiGHS prints a banner on stdout (from
  C++) when the process's first instance is made, before any option can be set; that first
  construction runs with file descriptor 1 pointed at /dev/null so that the banner cannot
  corrupt ``--json`` output.

highspy is imported only when an instance is made (labcore does not depend on it).
"""

from __future__ import annotations

import os
import sys
import threading

HIGHS_LOCK = threading.RLock()
_banner_silenced = False


def silent_highs():
    """A new ``highspy.Highs`` with ``output_flag`` off; call it only under ``HIGHS_LOCK``."""
    global _banner_silenced
    import highspy

    if _banner_silenced:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_silenced = True
    h.setOptionValue("output_flag", False)
    return h
