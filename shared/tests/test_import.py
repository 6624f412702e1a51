import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_labcore_leaves_torch_unimported():
    code = (
        "import sys, labcore\n"
        "import labcore.data, labcore.metrics, labcore.bench, labcore.cli, labcore.device, labcore.io\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    assert _run(code) == "False False"


def test_lazy_attribute_resolves_to_models_function():
    code = (
        "import labcore, labcore.models\n"
        "print(labcore.load_causal_lm is labcore.models.load_causal_lm,"
        " labcore.load_sentence_encoder is labcore.models.load_sentence_encoder)"
    )
    assert _run(code) == "True True"


def test_unknown_attribute_raises():
    import pytest

    import labcore

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = labcore.nope
