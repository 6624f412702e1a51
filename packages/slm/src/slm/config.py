"""The pipeline configuration: one dataclass per stage, one for the whole pipeline, loadable
from TOML or YAML and checked before any training.

A configuration file names the output folder, the stages to run (in the fixed order
teacher → distill → prune → quantize → compress → serve; any may be left out) and a table of
options per stage::

    out = "runs/bbc"
    stages = ["teacher", "distill", "prune", "quantize", "compress", "serve"]
    seed = 0

    [data]
    n_train_pairs = 160

    [prune]
    mlp_sparsity = 0.4

Unknown keys, unknown stages, a stage out of order or a value out of range are errors that
name the problem. Relative ``out`` paths are read relative to the configuration file.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcore.checks import choice, finite_float, positive_int
from labcore.errors import LabcoreError

#: The stages in the only order that works: each one reads the model the one before wrote.
STAGES = ("teacher", "distill", "prune", "quantize", "compress", "serve")
#: The stages that write a new model (the others write settings for the model before them).
MODEL_STAGES = ("teacher", "distill", "prune", "quantize")

TASKS = ("bbc",)
COMPRESS_METHODS = ("lead", "tfidf")
QUANT_METHODS = ("quantease", "gptq", "rtn")
DTYPES = ("float32", "bfloat16")


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LabcoreError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _fraction(name: str, value: Any) -> float:
    finite_float(name, value, minimum=0.0)
    if value >= 1:
        raise LabcoreError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DataConfig:
    """The ranking task: BBC News title → article body (:func:`mixlm.data.bbc_ranking`).

    Items are cut to their first ``item_words`` words: the full context that the compress
    stage shortens (about 1.3 SmolLM2 tokens per word of BBC text). ``n_validation_queries`` come from training-split
    articles no training pair uses (the serve stage tunes its batch size on them).
    """

    task: str = "bbc"
    n_train_pairs: int = 160
    n_queries: int = 30
    n_candidates: int = 20
    n_validation_queries: int = 8
    item_words: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        choice("data.task", self.task, TASKS)
        positive_int("data.n_train_pairs", self.n_train_pairs, minimum=2)
        positive_int("data.n_queries", self.n_queries)
        positive_int("data.n_candidates", self.n_candidates, minimum=2)
        positive_int("data.n_validation_queries", self.n_validation_queries)
        positive_int("data.item_words", self.item_words, minimum=8)
        _non_negative_int("data.seed", self.seed)


@dataclass(frozen=True)
class TeacherConfig:
    """Fine-tune ``model`` on the relevance labels with the full item text (BCE on the
    yes/no logit gap). ``smollm2-135m`` or ``gemma3-270m`` (offline wheels), any
    transformers causal LM directory, or ``tiny-llama`` (a seeded random model for tests)."""

    model: str = "smollm2-135m"
    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise LabcoreError(f"teacher.model must be a model name or path, got {self.model!r}")
        positive_int("teacher.epochs", self.epochs)
        finite_float("teacher.lr", self.lr, minimum=0.0, strict=True)
        positive_int("teacher.batch_size", self.batch_size)


@dataclass(frozen=True)
class DistillConfig:
    """Train ``student`` on α · KL(teacher ‖ student) of the yes/no distribution (score
    level: teacher and student vocabularies may differ) + (1 − α) · BCE on the labels, with
    the teacher's scores divided by ``temperature``."""

    student: str = "smollm2-135m"
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8
    alpha: float = 0.5
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.student, str) or not self.student:
            raise LabcoreError(
                f"distill.student must be a model name or path, got {self.student!r}"
            )
        positive_int("distill.epochs", self.epochs)
        finite_float("distill.lr", self.lr, minimum=0.0, strict=True)
        positive_int("distill.batch_size", self.batch_size)
        finite_float("distill.alpha", self.alpha, minimum=0.0)
        if self.alpha > 1:
            raise LabcoreError(f"distill.alpha must be in [0, 1], got {self.alpha!r}")
        finite_float("distill.temperature", self.temperature, minimum=0.0, strict=True)


@dataclass(frozen=True)
class PruneConfig:
    """OSSCAR structured pruning (shrunk, not masked), then ``recovery_epochs`` of the
    distillation loss against the teacher (0: none). Calibration: ``calibration_windows``
    windows of ``seqlen`` tokens of training prompts (query + item + answer)."""

    mlp_sparsity: float = 0.4
    head_sparsity: float = 0.0
    calibration_windows: int = 16
    seqlen: int = 256
    recovery_epochs: int = 1
    recovery_lr: float = 5e-5

    def __post_init__(self) -> None:
        _fraction("prune.mlp_sparsity", self.mlp_sparsity)
        _fraction("prune.head_sparsity", self.head_sparsity)
        if self.mlp_sparsity == 0 and self.head_sparsity == 0:
            raise LabcoreError("prune: mlp_sparsity and head_sparsity are both 0: nothing to prune")
        positive_int("prune.calibration_windows", self.calibration_windows)
        positive_int("prune.seqlen", self.seqlen, minimum=8)
        _non_negative_int("prune.recovery_epochs", self.recovery_epochs)
        finite_float("prune.recovery_lr", self.recovery_lr, minimum=0.0, strict=True)


@dataclass(frozen=True)
class QuantizeConfig:
    """Weight-only quantization of every linear layer of the blocks, per output channel, by
    ``method`` (QuantEase; GPTQ and RTN as baselines), served through torchao's integer
    weight kernels. ``export_vllm`` also writes a compressed-tensors checkpoint (needs the
    ``export`` extra)."""

    bits: int = 8
    method: str = "quantease"
    sweeps: int = 10
    calibration_windows: int = 16
    seqlen: int = 256
    export_vllm: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in (2, 3, 4, 5, 6, 7, 8):
            raise LabcoreError(f"quantize.bits must be an integer from 2 to 8, got {self.bits!r}")
        choice("quantize.method", self.method, QUANT_METHODS)
        positive_int("quantize.sweeps", self.sweeps)
        positive_int("quantize.calibration_windows", self.calibration_windows)
        positive_int("quantize.seqlen", self.seqlen, minimum=8)
        if not isinstance(self.export_vllm, bool):
            raise LabcoreError(
                f"quantize.export_vllm must be true or false, got {self.export_vllm!r}"
            )


@dataclass(frozen=True)
class CompressConfig:
    """Query-independent item-text compression to 1/``ratio`` of the tokens: ``lead`` keeps
    the first sentences, ``tfidf`` the first sentence plus the sentences of highest mean
    TF-IDF weight (idf fitted on the training items), in their original order."""

    method: str = "tfidf"
    ratio: float = 5.0

    def __post_init__(self) -> None:
        choice("compress.method", self.method, COMPRESS_METHODS)
        finite_float("compress.ratio", self.ratio, minimum=1.0)


@dataclass(frozen=True)
class ServeConfig:
    """Serving settings: the compute ``dtype`` and the batch size (items per forward after
    the shared query prefix), tuned on the validation queries: the largest items/s among
    ``batch_sizes`` whose p99 request latency is at most ``latency_target_s``."""

    dtype: str = "bfloat16"
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32)
    latency_target_s: float = 2.0

    def __post_init__(self) -> None:
        choice("serve.dtype", self.dtype, DTYPES)
        sizes = tuple(self.batch_sizes) if isinstance(self.batch_sizes, list | tuple) else None
        if not sizes:
            raise LabcoreError(
                f"serve.batch_sizes must be a non-empty list, got {self.batch_sizes!r}"
            )
        for b in sizes:
            positive_int("serve.batch_sizes[...]", b)
        object.__setattr__(self, "batch_sizes", sizes)
        finite_float("serve.latency_target_s", self.latency_target_s, minimum=0.0, strict=True)


SECTIONS = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "distill": DistillConfig,
    "prune": PruneConfig,
    "quantize": QuantizeConfig,
    "compress": CompressConfig,
    "serve": ServeConfig,
}


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: where it writes, which stages run, and every stage's options.

    Examples
    --------
    >>> PipelineConfig(out="runs/x", stages=("prune", "teacher"))
    Traceback (most recent call last):
    ...
    labcore.errors.LabcoreError: stage 'teacher' cannot run after 'prune': the order is teacher → distill → prune → quantize → compress → serve
    """

    out: str | Path
    stages: tuple[str, ...] = STAGES
    seed: int = 0
    answer_words: tuple[str, str] = ("yes", "no")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.out, str | Path) or not str(self.out):
            raise LabcoreError(f"out must be a folder path, got {self.out!r}")
        object.__setattr__(self, "out", Path(self.out).expanduser())
        if isinstance(self.stages, str) or not isinstance(self.stages, list | tuple):
            raise LabcoreError(f"stages must be a list of stage names, got {self.stages!r}")
        stages = tuple(self.stages)
        if not stages:
            raise LabcoreError(f"stages is empty; choose from {', '.join(STAGES)}")
        for s in stages:
            if s not in STAGES:
                raise LabcoreError(f"unknown stage {s!r}; the stages are {', '.join(STAGES)}")
        if len(set(stages)) != len(stages):
            raise LabcoreError(f"a stage is listed twice in {list(stages)}")
        for before, after in itertools.pairwise(stages):
            if STAGES.index(after) < STAGES.index(before):
                raise LabcoreError(
                    f"stage {after!r} cannot run after {before!r}: the order is "
                    + " → ".join(STAGES)
                )
        object.__setattr__(self, "stages", stages)
        _non_negative_int("seed", self.seed)
        words = self.answer_words
        if (
            not isinstance(words, list | tuple)
            or len(words) != 2
            or not all(isinstance(w, str) and w.strip() and w == w.strip() for w in words)
        ):
            raise LabcoreError(
                f"answer_words must be two words (yes, no), got {self.answer_words!r}"
            )
        object.__setattr__(self, "answer_words", tuple(words))
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise LabcoreError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["out"] = str(self.out)
        out["stages"] = list(self.stages)
        out["answer_words"] = list(self.answer_words)
        out["serve"]["batch_sizes"] = list(self.serve.batch_sizes)
        return out

    @classmethod
    def from_dict(cls, obj: Any, *, base: Path | None = None) -> PipelineConfig:
        """Build from a parsed TOML/YAML mapping; relative ``out`` is taken from ``base``."""
        if not isinstance(obj, dict):
            raise LabcoreError("the pipeline configuration must be a table of settings")
        known = {"out", "stages", "seed", "answer_words", *SECTIONS}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise LabcoreError(f"unknown setting(s) {unknown}; the top level takes {sorted(known)}")
        if "out" not in obj:
            raise LabcoreError("the configuration has no 'out' folder")
        kwargs: dict[str, Any] = {
            k: obj[k] for k in ("out", "stages", "seed", "answer_words") if k in obj
        }
        if base is not None and isinstance(kwargs["out"], str):
            path = Path(kwargs["out"]).expanduser()
            kwargs["out"] = path if path.is_absolute() else base / path
        for name, section in SECTIONS.items():
            if name not in obj:
                continue
            values = obj[name]
            if not isinstance(values, dict):
                raise LabcoreError(f"[{name}] must be a table of settings, got {values!r}")
            fields = {f.name for f in dataclasses.fields(section)}
            bad = sorted(set(values) - fields)
            if bad:
                raise LabcoreError(
                    f"[{name}] has unknown setting(s) {bad}; it takes {sorted(fields)}"
                )
            kwargs[name] = section(**values)
        return cls(**kwargs)


def load_config(path: str | Path) -> PipelineConfig:
    """Read a pipeline configuration from a ``.toml``, ``.yaml`` or ``.yml`` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LabcoreError(f"no configuration file at {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            obj = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LabcoreError(f"{path} is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LabcoreError(f"{path} is not valid YAML: {exc}") from None
    else:
        raise LabcoreError(f"{path}: the configuration must be a .toml, .yaml or .yml file")
    return PipelineConfig.from_dict(obj, base=path.parent)
