import gzip
import json
import struct
from dataclasses import replace

import numpy as np
import pytest
import torch
from msam import MicroBatchSAM, bench, cli
from msam.data import load_digits_dataset, load_fashion_mnist, read_idx
from msam.models import EncoderClassifier
from msam.train import TrainConfig, load_checkpoint, loss_fn, save_checkpoint, train

from labcore import LabcoreError
from labcore.bench import validate_results


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        _write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def test_fashion_mnist_reader(fake_fashion):
    ds = load_fashion_mnist(fake_fashion)
    assert ds.train_x.shape == (60, 1, 28, 28) and ds.test_x.shape == (20, 1, 28, 28)
    assert abs(float(ds.train_x.mean())) < 1e-5  # normalised with the train statistics
    assert ds.train_y.tolist() == [i % 10 for i in range(60)]
    sub = load_fashion_mnist(fake_fashion, train_subset=30)
    assert len(sub.train_y) == 30 and sorted(set(sub.train_y.tolist())) == list(range(10))


def test_fashion_mnist_errors(tmp_path, fake_fashion):
    with pytest.raises(LabcoreError, match="folder not found"):
        load_fashion_mnist(tmp_path / "nowhere")
    (fake_fashion / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(LabcoreError, match=r"t10k-labels-idx1-ubyte\.gz not found"):
        load_fashion_mnist(fake_fashion)
    bad = tmp_path / "bad-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(LabcoreError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte.gz"
    short.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + b"\x00\x01"))
    with pytest.raises(LabcoreError, match="expected 5"):
        read_idx(short)


def test_digits_split():
    ds = load_digits_dataset()
    assert ds.train_x.shape[1:] == (1, 8, 8) and len(ds.train_y) + len(ds.test_y) == 1797
    assert ds.num_classes == 10


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "msam"])
def test_training_learns_digits(optimizer):
    config = TrainConfig(
        data="digits",
        model="cnn-small",
        optimizer=optimizer,
        micro_batches=4,
        epochs=3,
        batch_size=64,
        lr=0.05,
        train_subset=768,
        device="cpu",
    )
    result = train(config)
    assert result.test_accuracy > 0.5  # chance is 0.1
    assert result.steps == 3 * 12 and result.train_time_s > 0
    if optimizer == "msam":  # same seed, same result
        assert train(config).test_accuracy == result.test_accuracy


def test_fp16_training_with_a_scaler_stays_finite():
    config = TrainConfig(
        data="digits",
        model="cnn-small",
        optimizer="msam",
        micro_batches=4,
        epochs=1,
        batch_size=64,
        amp="fp16",
        device="cpu",
        train_subset=256,
    )
    result = train(config)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "adam"}, "optimizer must be"),
        ({"data": "bbc"}, "minilm"),
        ({"micro_batches": 0}, "micro_batches must be"),
        ({"micro_batches": 200, "batch_size": 128}, "cannot exceed"),
        ({"rho": -1.0}, "rho must be"),
        ({"norm": "layer"}, "norm must be"),
        ({"mode": "parallel"}, "mode must be"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        TrainConfig(**kwargs)


def test_checkpoint_round_trip(tmp_path):
    config = TrainConfig(data="digits", epochs=1, batch_size=64, device="cpu", train_subset=128)
    result = train(config)
    path = save_checkpoint(tmp_path / "ck.pt", result)
    model, loaded, _ = load_checkpoint(path)
    assert loaded == config
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LabcoreError, match="checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_cli_train_then_flatness(tmp_path, capsys):
    ck = tmp_path / "model.pt"
    argv = [
        "train",
        "--data",
        "digits",
        "--optimizer",
        "msam",
        "--micro-batches",
        "4",
        "--epochs",
        "1",
        "--rho",
        "0.05",
        "--train-subset",
        "256",
        "--device",
        "cpu",
        "--out",
        str(ck),
        "--json",
        "-q",
    ]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["rho"] == 0.05 and out["checkpoint"] == str(ck)
    assert (
        cli.main(
            [
                "flatness",
                str(ck),
                "--samples",
                "64",
                "--iters",
                "3",
                "--probes",
                "2",
                "--json",
                "-q",
            ]
        )
        == 0
    )
    flat = json.loads(capsys.readouterr().out)
    assert flat["samples"] == 64 and flat["top_eigenvalue"] > 0 and flat["m_sharpness"] >= 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["train", "--optimizer", "adam", "-q"]) == 2
    assert "optimizer must be" in capsys.readouterr().err
    assert cli.main(["flatness", str(tmp_path / "missing.pt"), "-q"]) == 2
    assert "not found" in capsys.readouterr().err


def _tiny_preset():
    return {
        "image": {
            "config": {
                "data": "digits",
                "model": "cnn-small",
                "epochs": 1,
                "batch_size": 64,
                "train_subset": 128,
            },
            "seeds": "all",
            "micro_batches": [4],
            "modes": ["sequential", "vmap"],
            "rho": 0.05,
            "rho_sweep": [0.1],
        },
        "text": None,
        "step_time": {
            "model": "cnn-small",
            "image_shape": [1, 8, 8],
            "batch_size": 32,
            "micro_batches": [4],
            "steps": 2,
        },
    }


def test_bench_tiny_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench.PRESETS, "quick", _tiny_preset())
    monkeypatch.setattr(
        bench, "IMAGE_FLATNESS", {"samples": 64, "batch_size": 32, "iters": 2, "probes": 1}
    )
    argv = ["bench", "--quick", "--seeds", "0,1", "--out", str(tmp_path), "--device", "cpu"]
    assert cli.main([*argv, "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    results = json.loads((tmp_path / "results.json").read_text())
    validate_results(results)
    assert payload["rows"] == results["rows"]
    assert results["config"]["preset"] == "quick"
    assert results["provenance"]["seeds"] == [0, 1] and results["provenance"]["quick"]
    methods = [(r["method"], r["params"].get("mode"), r["seed"]) for r in results["rows"]]
    # sgd, sam, msam x 2 modes for 2 seeds, the ρ sweep (sam, msam) on seed 0, 4 timing rows.
    assert len(methods) == 8 + 2 + 4
    sweep = [r for r in results["rows"] if r["params"].get("rho") == 0.1]
    assert [r["seed"] for r in sweep] == [0, 0]
    timing = [r for r in results["rows"] if r["params"].get("measure") == "step_time"]
    assert {r["seed"] for r in timing} == {None}
    assert next(r for r in timing if r["method"] == "sam")["metrics"]["vs_sam"] == 1.0
    summary = (tmp_path / "summary.md").read_text()
    assert "## Summary" in summary and "## Orderings" in summary and "msam-4-vmap" in summary
    assert "| n |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results_accuracy_eigenvalue.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_seeds_and_preset_option(monkeypatch, tmp_path):
    from labcore.bench import BenchConfig

    assert bench.BENCH.uses == {"seeds", "data_root", "device"}
    assert bench.BENCH.seeds_for(False) == (0, 1, 2) and bench.BENCH.seeds_for(True) == (0,)
    tiny = _tiny_preset()
    tiny["image"]["rho_sweep"] = []
    tiny["image"]["modes"] = ["sequential"]
    tiny["text"] = {**tiny["image"], "seeds": "first"}  # a second task on the first seed
    monkeypatch.setitem(bench.PRESETS, "full", tiny)
    monkeypatch.setattr(
        bench, "IMAGE_FLATNESS", {"samples": 32, "batch_size": 32, "iters": 1, "probes": 1}
    )
    monkeypatch.setattr(bench, "TEXT_FLATNESS", bench.IMAGE_FLATNESS)
    config = BenchConfig(
        quick=True, seeds=(3, 4), device="cpu", out=tmp_path, options={"preset": "full"}
    )
    report = bench.run_bench(config)
    assert report.config["preset"] == "full"
    train_rows = [r for r in report.rows if r.params.get("measure") != "step_time"]
    # image: sgd, sam, msam on seeds 3 and 4; the second task on seed 3 only.
    assert [r.seed for r in train_rows] == [3, 4, 3, 4, 3, 4, 3, 3, 3]
    assert not (tmp_path / "results.json").exists()  # the CLI writes the results, not run_bench


def test_bench_help_offers_its_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    out = capsys.readouterr().out
    for flag in ("--quick", "--out", "--seeds", "--data-root", "--device", "--preset", "--json"):
        assert flag in out
    assert "--seed " not in out


class BagOfEmbeddings(torch.nn.Module):
    """Dict inputs like a tokenizer's, masked mean pooling: vmap-friendly."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, inputs):
        m = inputs["attention_mask"].unsqueeze(-1).float()
        h = self.norm(self.embed(inputs["input_ids"]))
        return self.head((h * m).sum(1) / m.sum(1))


def _token_batch():
    g = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(0, 50, (8, 6), generator=g),
        "attention_mask": torch.ones(8, 6, dtype=torch.long),
    }
    inputs["attention_mask"][:, 4:] = 0
    return inputs, torch.randint(0, 3, (8,), generator=g)


def test_dict_batches_in_both_modes():
    models = [BagOfEmbeddings(), BagOfEmbeddings()]
    for m, mode in zip(models, ("sequential", "vmap"), strict=True):
        opt = MicroBatchSAM(m.parameters(), torch.optim.AdamW, rho=0.05, micro_batches=4, lr=1e-2)
        opt.train_step(m, loss_fn, _token_batch(), mode=mode)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_encoder_classifier_trains_and_drops_the_pooler():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model = EncoderClassifier(BertModel(cfg), 16, 3)
    assert model.encoder.pooler is None
    opt = MicroBatchSAM(model.parameters(), torch.optim.AdamW, rho=0.05, micro_batches=4, lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    opt.train_step(model, loss_fn, _token_batch())
    # Every parameter got a gradient and moved.
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_vmap_training_drops_an_uneven_last_batch():
    # 300 examples at batch 64: 4 full batches and a last one of 44, not a multiple of 8.
    config = TrainConfig(
        data="digits",
        optimizer="msam",
        micro_batches=8,
        mode="vmap",
        epochs=1,
        batch_size=64,
        train_subset=300,
        device="cpu",
    )
    assert train(config).steps == 4
    assert train(replace(config, mode="sequential")).steps == 5


def test_bench_data_root_with_the_quick_preset_is_an_error(tmp_path, capsys):
    from msam.cli import main

    rc = main(["bench", "--quick", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "reads no external data" in capsys.readouterr().err
