"""Run configuration: dataclasses with defaults that run the embedded example, loadable from YAML,
with command-line overrides.

Command line: ``[--config FILE.yaml] [key=value | --key value | --key=value ...]``; values are
parsed as YAML scalars (``steps=20``, ``beta=0.04``, ``model=null``). Later settings win:
defaults < YAML file < overrides. Unknown keys are errors that suggest the closest field.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from .device import setting_problems
from .grpo import AGGREGATIONS, RATIO_LEVELS

FP8_MODES = ("none", "rollout", "train")


@dataclass
class ModelOptions:
    """Where the policy comes from: a Hugging Face-layout directory, or (``model: null``) a tiny
    decoder and byte-level BPE built in-process from the environment's prompts."""

    command: ClassVar[str] = "model"  # names the settings in error messages
    run_dir: str = "runs/countdown-tiny"
    seed: int = 0
    env: str = "rewardgym/Countdown-v0"
    model: str | None = None
    vocab_size: int = 512
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    # Mixture-of-Experts for the built decoder (num_experts 0 = dense; see ModelConfig for their meaning)
    num_experts: int = 0
    num_experts_per_tok: int = 2
    n_shared_experts: int = 1
    moe_intermediate_size: int | None = None
    scoring_func: str = "sigmoid"
    bias_update_speed: float = 0.001
    aux_loss_alpha: float = 0.0
    threads: int = 1  # torch CPU threads (0 = torch default); a tiny model is fastest on one
    device: str = "auto"  # auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda, cuda:N; see device.py
    dtype: str = "float32"  # the policy's parameters: float32 or bfloat16
    progress: bool = True  # a tqdm bar when on a terminal; per-step lines otherwise
    tensorboard: bool = False  # also write TensorBoard events to run_dir/tensorboard

    def moe_options(self) -> dict[str, Any]:
        """The ModelConfig fields of a built Mixture-of-Experts decoder (none for a dense one)."""
        names = ("num_experts", "num_experts_per_tok", "n_shared_experts", "moe_intermediate_size", "scoring_func",
                 "bias_update_speed", "aux_loss_alpha")
        return {name: getattr(self, name) for name in names} if self.num_experts else {}

    def problems(self) -> list[str]:
        """Settings that cannot work, one message each."""
        return setting_problems(self.device, self.dtype)

    def __post_init__(self) -> None:
        if problems := self.problems():
            raise ValueError(f"{self.command} config: " + "; ".join(problems))


@dataclass
class SFTConfig(ModelOptions):
    """``rewardgym sft``: fine-tune on (prompt, completion) pairs and save the model to ``run_dir/model``."""

    command: ClassVar[str] = "sft"
    run_dir: str = "runs/sft"
    data: str | None = None  # .jsonl / .parquet; null = the env's reference solutions
    examples: int = 2000  # embedded set size (reference solutions of seeds SFT_SEEDS...)
    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3


@dataclass
class TrainConfig(ModelOptions):
    """``rewardgym train``: optional SFT cold start, then GRPO on ``env``."""

    command: ClassVar[str] = "train"
    # cold start (skipped when sft_steps is 0)
    sft_data: str | None = None
    sft_examples: int = 8000
    sft_steps: int = 1600
    sft_batch_size: int = 32
    sft_lr: float = 3e-3
    # rollouts
    steps: int = 300
    tasks_per_step: int = 64
    group_size: int = 8
    max_new_tokens: int = 40
    temperature: float = 1.0
    top_p: float = 1.0
    remote: str | None = None  # URL of a `rewardgym serve` verifier service; null = the local env pool
    routing_replay: bool = True  # MoE: train on the experts chosen while sampling (R3)
    expert_parallel: bool = False  # MoE under torchrun: each rank holds 1/world of the routed experts
    compile: bool = False  # sample through a torch.compile'd decode step (dense, full-precision models)
    # reward shaping (rewardgym.shaping.Closeness): partial credit weight * max(0, 1 - distance / scale)
    # for wrong answers whose verdict reports a distance from the target (countdown's do); 0 = off
    closeness: float = 0.5
    closeness_scale: float = 50.0
    # GRPO
    lr: float = 2e-4
    mu: int = 1  # optimizer passes over each rollout batch
    minibatch_size: int = 0  # rollouts per optimizer step; 0 = the whole batch
    eps_low: float = 0.2
    eps_high: float = 0.28
    beta: float = 0.0  # k3 KL weight; 0 keeps no reference model
    scale_std: bool = True  # false = Dr. GRPO advantages
    aggregation: str = "token_mean"
    ratio_level: str = "token"  # "sequence" = GSPO
    filter_zero_variance: bool = True
    overlong_buffer: int = 0  # >0: DAPO soft overlong punishment over the last N tokens
    overlong_factor: float = 1.0
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    # precision (rewardgym.trainers.models.fp8): "rollout" samples in FP8 and trains in full precision
    # (TIS weights capped at tis_cap correct the gap; 0 = none); "train" runs both in FP8
    fp8: str = "none"
    tis_cap: float = 2.0
    # curriculum (rewardgym.curriculum): the env's difficulty ladder, moved by group success rates
    curriculum: bool = False
    curriculum_low: float = 0.2
    curriculum_high: float = 0.8
    curriculum_window: int = 16
    # bookkeeping
    checkpoint_every: int = 5
    keep_checkpoints: int = 2
    eval_tasks: int = 256
    plot: bool = True

    def cold_start(self) -> SFTConfig:
        """The SFT stage's settings (``sft_*`` fields) as an SFTConfig."""
        shared = {f.name: getattr(self, f.name) for f in fields(ModelOptions)}
        return SFTConfig(**shared, data=self.sft_data, examples=self.sft_examples, steps=self.sft_steps,
                         batch_size=self.sft_batch_size, lr=self.sft_lr)

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.aggregation not in AGGREGATIONS:
            problems.append(f"aggregation {self.aggregation!r} not one of {AGGREGATIONS}")
        if self.ratio_level not in RATIO_LEVELS:
            problems.append(f"ratio_level {self.ratio_level!r} not one of {RATIO_LEVELS}")
        if self.fp8 not in FP8_MODES:
            problems.append(f"fp8 {self.fp8!r} not one of {FP8_MODES}")
        if self.tis_cap < 0:
            problems.append(f"tis_cap must be >= 0 (0 = no correction), got {self.tis_cap}")
        if self.group_size < 2:
            problems.append(f"group_size must be >= 2, got {self.group_size}")
        for name in ("steps", "tasks_per_step", "max_new_tokens", "mu", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            problems.append(f"GRPO samples: need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.expert_parallel and self.model is None and not self.num_experts:
            problems.append("expert_parallel=true needs a Mixture-of-Experts policy: set num_experts (or a MoE model=)")
        if self.compile and (self.expert_parallel or self.num_experts or self.fp8 != "none"):
            problems.append("compile=true supports dense full-precision models only "
                            "(not with num_experts, fp8 or expert_parallel)")
        if self.closeness < 0 or self.closeness_scale <= 0:
            problems.append(f"need closeness >= 0 and closeness_scale > 0, got {self.closeness}, {self.closeness_scale}")
        if self.overlong_buffer > self.max_new_tokens:
            problems.append(f"overlong_buffer ({self.overlong_buffer}) exceeds max_new_tokens ({self.max_new_tokens})")
        return problems


C = TypeVar("C")


def parse_config(cls: type[C], argv: list[str]) -> C:
    """Build ``cls`` from defaults, an optional ``--config`` YAML file and overrides in ``argv``."""
    values: dict[str, tuple[Any, str]] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--config", "-c"):
            if not args:
                raise ValueError("--config needs a YAML file")
            values.update(_read_yaml(Path(args.pop(0))))
            continue
        key, sep, raw = arg.lstrip("-").partition("=")
        if not sep:
            if not arg.startswith("--") or not args:
                raise ValueError(f"argument {arg!r}: expected key=value or --key value")
            raw = args.pop(0)
        values[key.replace("-", "_")] = (yaml.safe_load(raw) if raw != "" else None, f"argument {arg!r}")
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, (value, where) in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            raise ValueError(f"{where}: unknown setting {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        kwargs[key] = _coerce(value, hints[key], f"{where}: {key}")
    return cls(**kwargs)


def _read_yaml(path: Path) -> dict[str, tuple[Any, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a mapping of settings")
    return {str(k): (v, f"{path}") for k, v in data.items()}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a YAML value against a field's type (int accepted for float; None for optionals)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where}: may not be null")
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if option is bool and isinstance(value, bool):
            return value
        if option in (int, str) and type(value) is option:
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"{where}: expected {names}, got {value!r}")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
