import pkgutil
import subprocess
import sys

import pytest

import labcore

MODULES = sorted(
    f"labcore.{m.name}" for m in pkgutil.iter_modules(labcore.__path__) if m.name != "__main__"
)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_without_torch(module):
    # Alone, in a fresh interpreter: an import cycle or a missing import shows up here.
    code = f"import sys, {module}\nprint('torch' in sys.modules, 'transformers' in sys.modules)"
    assert _run(code) == "False False"


def test_library_modules_do_not_import_the_cli():
    # Only the command modules may import labcore.cli (library code shows progress through
    # labcore.progress).
    code = (
        "import sys\n"
        f"import {', '.join(m for m in MODULES if m not in ('labcore.cli', 'labcore.commands'))}\n"
        "print('labcore.cli' in sys.modules)"
    )
    assert _run(code) == "False"


def test_lazy_attribute_resolves_to_models_function():
    code = (
        "import labcore, labcore.models\n"
        "print(labcore.load_causal_lm is labcore.models.load_causal_lm,"
        " labcore.load_sentence_encoder is labcore.models.load_sentence_encoder)"
    )
    assert _run(code) == "True True"


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = labcore.nope
