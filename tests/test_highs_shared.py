import subprocess
import sys

import pytest

pytest.importorskip("highspy")


def test_silent_highs_keeps_stdout_clean_and_the_lock_is_shared():
    code = (
        "from labcore.highs import HIGHS_LOCK, silent_highs\n"
        "import importlib\n"
        "a = importlib.import_module('archetypal_nmf.init')\n"
        "b = importlib.import_module('batchroute.solve')\n"
        "c = importlib.import_module('dpbss.bss')\n"
        "assert a.HIGHS_LOCK is HIGHS_LOCK and b.HIGHS_LOCK is HIGHS_LOCK\n"
        "assert c.HIGHS_LOCK is HIGHS_LOCK\n"
        "with HIGHS_LOCK:\n"
        "    with HIGHS_LOCK:\n"  # re-entrant
        "        h = silent_highs()\n"
        "        h.run()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "ok\n"  # no HiGHS banner on stdout
