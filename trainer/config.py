"""The training run's configuration: one dataclass, loaded from YAML plus `key=value` overrides.

`chord-env train --config configs/chord-phi.yaml model=DIR steps=4 mu.kind=chord rollout.group_size=4 ...`
reads the YAML file (any field of `TrainConfig`; `mu:` is a mapping onto `MuSchedule`, or a number for
a constant mu; `rollout:` a mapping onto the runner's own `RolloutConfig`, unset fields at their
defaults; `lora:` null for full fine-tuning or a mapping onto `trainer/lora.py`'s `LoraSpec`), then
applies the overrides in order, each value parsed as YAML so numbers, booleans, `null` and lists work.
Setting `mu.kind` to another kind drops the old kind's parameters, so `mu.kind=chord` on top of a
constant schedule asks for exactly the chord parameters.

Types are checked by a small checker over the dataclass annotations (int, float, str, bool, Literal,
`X | Y | None`, `dict[str, float]` weight mappings, tuples (fixed-length or `tuple[X, ...]`), nested dataclasses) rather than a library: the surface is one flat
dataclass and three nested ones (`mu`, `rollout`, `lora`), and the checker gives the error this project wants, one `ValueError`
naming the file (or the command-line override) and the field. YAML 1.1 reads `1e-6` as a string; our
loader reads it as the float everyone means.

`save_config` writes the resolved config, every field spelled out (phi on or off, token-mean or
seq-mean, KL, clip values; docs/method.md, "Deviations from the references"), and
`load_config(saved, [])` gives it back equal.
"""

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from chord_env.agents.backend import capabilities, trainable_backends
from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.lora import LoraSpec
from chord_env.trainer.losses import AGGREGATIONS
from chord_env.trainer.mu import PARAMS, MuSchedule
from chord_env.trainer.token_weights import TOKEN_WEIGHTS


@dataclass(frozen=True)
class TrainConfig:
    """Everything a CHORD run depends on; the names follow the paper and docs/method.md."""

    model: str
    """the policy: a Hugging Face model folder (see `chord-env prepare-model`)"""
    env: str | dict[str, float] = "chord/Calculator-v0"
    """the rollouts' env: a registered id, or ids mixed by weight ({id: weight}; `envs/mixture.py`),
    made for split "train"; periodic evaluation plays the "validation" and "held_out" splits"""
    expert: str | dict[str, float] | None = None
    """expert traces (JSONL) for the SFT term, or several files mixed by weight ({path: weight});
    needed whenever mu > 0"""
    out: str = "runs/chord"
    """run folder: resolved config, checkpoints, metrics, plots"""
    steps: int = 20
    """number of optimizer steps"""
    seed: int = 0
    """seed of every random number generator"""
    mu: MuSchedule = field(default_factory=lambda: MuSchedule("constant", value=0.1))
    """mu(step), the weight of L_SFT in (1 - mu) L_RL + mu L_SFT (CHORD-phi: constant 0.1)"""
    learned_mu: bool = False
    """learn mu (`trainer/mu.py`, LearnedMu) instead of following `mu`; mu must then be constant (its init)"""
    mu_target_share: float = 0.5
    """learned mu only: the share of the blended gradient that SFT should carry"""
    learned_mu_lr: float = 0.1
    """learned mu only: the SGD step size on theta (mu = sigmoid(theta)); each step moves theta a fraction
    2 * learned_mu_lr of the way to its target, so it must lie in (0, 0.5], where the new theta lies
    between the old one and the target and mu never leaves `learned_mu_bounds`"""
    learned_mu_bounds: tuple[float, float] = (0.01, 0.99)
    """learned mu only: [mu_min, mu_max], the interval mu's target is clamped to, inside (0, 1); the
    initial mu (the constant `mu`) must lie in it"""
    token_weight: str = "phi"
    """per-token SFT weight: one of token_weights.TOKEN_WEIGHTS ("phi" is CHORD-phi, "none" plain SFT)"""
    focal_gamma: float = 2.0
    """focal token weight only: gamma in (1 - p)^gamma"""
    low_prob_max: float = 10.0
    """low_prob token weight only: w_max in min(1 / p, w_max)"""
    tasks_per_step: int = 8
    """P, prompts (tasks) rolled out per step"""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """how episodes are sampled (`agents/runner.py`, `RolloutConfig`): `group_size` (n, rollouts per
    prompt, the group that normalises advantages), `temperature`, `top_p`, `max_turn_tokens`,
    `max_context` (most tokens of one episode), `concurrency`, `truncation_reward` (its `seed` stays
    null: the trainer seeds each step's rollouts from the run's `seed`); in YAML a mapping (`rollout: {group_size: 4, max_turn_tokens: 160}`), on the command line `rollout.group_size=4`"""
    expert_per_step: int = 8
    """E, expert traces per step, drawn cyclically from the expert set"""
    micro_batch_tokens: int = 4096
    """token budget of one micro-batch, padding included (gradient accumulation up to the full step); a
    sequence longer than this gets a micro-batch of its own. Sequences are grouped longest first and
    padded to the group's longest, so a smaller budget wastes less on padding: on CPU, where a small
    batch costs no more per token, 1024 trains catalogue traces 1.3x faster than 4096 (26% of a
    4096-token micro-batch was padding)"""
    lr: float = 1e-6
    """AdamW learning rate"""
    second_stage_lr: float | None = None
    """with a `switch` mu schedule only: run the steps from `mu.at` on as a second stage, the way a
    separate run would start it: a fresh AdamW (moments and step count reset) with this learning rate
    (SFT-then-GRPO in the paper: two runs, each with its own learning rate). null: one optimizer and
    one learning rate throughout"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas"""
    grad_clip: float = 1.0
    """max global gradient norm"""
    eps_low: float = 0.2
    """PPO clip: lower bound 1 - eps_low of the ratio"""
    eps_high: float = 0.2
    """PPO clip: upper bound 1 + eps_high of the ratio"""
    dual_clip_c: float | None = 3.0
    """dual clip c for negative advantages (> 1); null disables it"""
    aggregation: Literal["token-mean", "seq-mean"] = "token-mean"
    """L_RL over tokens: "token-mean" (the authors) or "seq-mean" (ms-swift's default)"""
    kl_coef: float = 0.0
    """coefficient of the k3 KL penalty to the initial policy (0 = off, as in the reference configs)"""
    log_kl_initial: bool = True
    """log `grpo/kl_ref`, the k3 estimate of KL(pi || pi_initial) on the sampled tokens of every step with
    rollouts: how far training has moved the policy from the model it started from (the drift the CHORD
    paper plots). Costs a frozen copy of the initial weights and one no-grad forward per rollout batch;
    kl_coef > 0 needs the same and turns the estimate into a penalty"""
    ppo_epochs: int = 1
    """passes over each rollout batch (TRL's num_iterations, verl's ppo_epochs). 1: one optimizer step per
    batch and ratio == 1 (the authors' setting; the clip knobs then do nothing). > 1: the trainer's old
    logprobs are computed once, before the first step, under the rollout weights, so from the second
    step on the ratio leaves 1 and the clip and dual clip act"""
    ppo_mini_batches: int = 1
    """optimizer steps per pass: the rollouts and the expert traces are each split into this many
    mini-batches, step i trains on (1 - mu) L_RL(rollouts_i) + mu L_SFT(experts_i); so each step keeps
    the mu-blend and every expert trace is seen ppo_epochs times, as every rollout is"""
    tis_cap: float | None = 2.0
    """truncated importance sampling against the rollout engine: each sampled token's policy-gradient term
    is weighted by min(p_trainer_old / p_engine, tis_cap) (detached); null disables it. 2.0 is the cap of
    TRL's vllm_importance_sampling_cap (on by default with vLLM, token-level truncation, TRL 0.22-0.24;
    later TRL defaults to sequence-level masking at 3.0), of the TIS authors (Yao et al. 2025) and the
    value verl's rollout-correction docs use (verl itself defaults to off: tis_imp_ratio_cap -1, later
    rollout_is_threshold null). On here because it is free (the engine's logprobs come with every
    rollout) and inert when engine and trainer agree (fp32 on CPU: |diff| ~4e-5, w ~1), while a bf16
    engine against an fp32 trainer on GPU makes the rollouts slightly off-policy"""
    backend: str = "vllm"
    """rollout backend: a registered name (`agents/backend.py`, `BACKENDS`) whose capabilities include
    weight sync ("vllm", "hf", "remote-vllm")"""
    servers: tuple[str, ...] = ()
    """a remote backend's servers ("remote-vllm"): their OpenAI base URLs, e.g.
    [http://10.0.0.2:8000/v1, http://10.0.0.3:8000/v1]; under torchrun rank r drives servers r, r + W, ...
    (docs/launch.md, "Several machines: remote vLLM servers")"""
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """compute dtype: "auto" is bf16 autocast on CUDA (fp32 master weights), fp32 on CPU"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass to save memory"""
    data_parallel: Literal["ddp", "fsdp2"] = "ddp"
    """how the ranks share the model when torchrun starts several (docs/launch.md; `trainer/distributed.py`):
    "ddp", a full replica per rank (DistributedDataParallel), or "fsdp2", parameters, gradients and
    optimizer state sharded across the ranks (`torch.distributed.fsdp.fully_shard`); either way the
    ranks make the update one process makes on the same global batch. One process ignores it"""
    lora: LoraSpec | None = None
    """null: full fine-tuning. A mapping (`lora: {rank: 16, alpha: 32, dropout: 0.0, target_modules:
    all-linear}`, or `lora.rank=16` on the command line, unset fields at their defaults): train peft LoRA
    adapters alone on the frozen model (`trainer/lora.py`); the engine gets merged weights after each
    step, checkpoints hold the adapter, `final/` the merged model. LoRA wants a larger `lr` than full
    fine-tuning (about 10x). In one process or under DDP, not with FSDP2"""
    share_prefix: bool = False
    """RL forward passes run each GRPO group's prompt once, its samples attending to its keys and values
    (Prefix Grouper, arXiv 2506.05433; trainer/prefix.py): the same loss and gradient as the plain pass,
    less compute and memory when prompts are long and responses short. Works with gradient
    checkpointing; needs an attention that takes a padding mask with a KV cache (eager, sdpa)"""
    checkpoint_every: int = 10
    """save a checkpoint every this many steps (0 = only at the end)"""
    eval_every: int = 0
    """evaluate every this many steps (0 = off)"""
    eval_tasks: int = 32
    """tasks per evaluation"""

    def __post_init__(self):
        if problem := next(_problems(self), None):
            raise ConfigError(*problem)


class ConfigError(ValueError):
    """A bad config value; `field` names it (dotted for nested fields, e.g. "mu.peak")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def _problems(c: TrainConfig):
    """(field, message) for each invalid value; the types are already right."""
    r = c.rollout
    at_least = {"steps": 1, "seed": 0, "tasks_per_step": 1, "expert_per_step": 0}
    at_least |= {"micro_batch_tokens": 1, "eval_tasks": 1, "checkpoint_every": 0, "eval_every": 0}
    at_least |= {"ppo_epochs": 1, "ppo_mini_batches": 1}
    rollout_at_least = {"group_size": 2, "max_turn_tokens": 1, "max_context": 1, "concurrency": 1}
    for name, low in at_least.items():
        if getattr(c, name) < low:
            yield name, f"must be >= {low}, got {getattr(c, name)}"
    for name, low in rollout_at_least.items():
        if getattr(r, name) < low:
            yield f"rollout.{name}", f"must be >= {low}, got {getattr(r, name)}"
    positive = {"lr": c.lr, "grad_clip": c.grad_clip, "rollout.temperature": r.temperature}
    if c.second_stage_lr is not None:
        positive["second_stage_lr"] = c.second_stage_lr
        if c.mu.kind != "switch":
            yield "second_stage_lr", f"needs a switch mu schedule (the stages meet at mu.at), got mu.kind {c.mu.kind!r}"
    non_negative = {"weight_decay": c.weight_decay, "kl_coef": c.kl_coef, "focal_gamma": c.focal_gamma}
    for name, value in positive.items():
        if not value > 0:
            yield name, f"must be > 0, got {value}"
    for name, value in non_negative.items():
        if not value >= 0:
            yield name, f"must be >= 0, got {value}"
    if not 0 < r.top_p <= 1:
        yield "rollout.top_p", f"must lie in (0, 1], got {r.top_p}"
    if not all(0 <= b < 1 for b in c.betas):
        yield "betas", f"each must lie in [0, 1), got {list(c.betas)}"
    if not 0 <= c.eps_low < 1:
        yield "eps_low", f"must lie in [0, 1), got {c.eps_low}"
    if not c.eps_high >= 0:
        yield "eps_high", f"must be >= 0, got {c.eps_high}"
    if c.dual_clip_c is not None and not c.dual_clip_c > 1:
        yield "dual_clip_c", f"must be > 1 (or null to disable), got {c.dual_clip_c}"
    if c.low_prob_max < 1:
        yield "low_prob_max", f"must be >= 1, got {c.low_prob_max}"
    if c.token_weight not in TOKEN_WEIGHTS:
        yield "token_weight", f"must be one of {sorted(TOKEN_WEIGHTS)}, got {c.token_weight!r}"
    if c.backend not in trainable_backends():
        yield "backend", f"must be one of {trainable_backends()} (a registered backend that takes new weights), got {c.backend!r}"
    elif capabilities(c.backend).remote != bool(c.servers):
        yield "servers", (f"backend {c.backend!r} samples from servers: list their base URLs" if not c.servers
                          else f"only a remote backend takes servers; {c.backend!r} runs the model folder")
    if c.aggregation not in AGGREGATIONS:
        yield "aggregation", f"must be one of {sorted(AGGREGATIONS)}, got {c.aggregation!r}"
    if r.seed is not None:
        yield "rollout.seed", f"must stay null: each step's rollouts are seeded from the run's `seed`, got {r.seed}"
    if r.max_turn_tokens > r.max_context:
        yield "rollout.max_turn_tokens", f"must be <= rollout.max_context ({r.max_context}), got {r.max_turn_tokens}"
    if c.expert_per_step == 0 and (c.learned_mu or any(c.mu(step) > 0 for step in range(c.steps))):
        yield "expert_per_step", "must be >= 1: mu > 0 at some step, so the SFT term needs expert traces"
    if c.lora is not None:
        if c.lora.rank < 1:
            yield "lora.rank", f"must be >= 1, got {c.lora.rank}"
        if not c.lora.alpha > 0:
            yield "lora.alpha", f"must be > 0, got {c.lora.alpha}"
        if not 0 <= c.lora.dropout < 1:
            yield "lora.dropout", f"must lie in [0, 1), got {c.lora.dropout}"
        if not c.lora.target_modules:
            yield "lora.target_modules", "must name the layers to adapt: all-linear or a regular expression"
        if c.data_parallel == "fsdp2":
            yield "lora", "runs in one process or under DDP: LoRA with FSDP2's sharded weights is not supported"
    if c.tis_cap is not None and not c.tis_cap >= 1:
        yield "tis_cap", f"must be >= 1 (a cap below 1 would shrink even on-policy tokens) or null, got {c.tis_cap}"
    if c.ppo_mini_batches > c.tasks_per_step * r.group_size:
        yield "ppo_mini_batches", f"must be <= tasks_per_step * rollout.group_size ({c.tasks_per_step * r.group_size}): each needs a rollout"
    if c.ppo_mini_batches > c.expert_per_step and (c.learned_mu or any(c.mu(step) > 0 for step in range(c.steps))):
        yield "ppo_mini_batches", f"must be <= expert_per_step ({c.expert_per_step}): each mini-batch needs an expert trace"
    if c.learned_mu:
        mu_min, mu_max = c.learned_mu_bounds
        if not 0 < mu_min <= mu_max < 1:
            yield "learned_mu_bounds", f"must be [mu_min, mu_max] with 0 < mu_min <= mu_max < 1, got {list(c.learned_mu_bounds)}"
        elif c.mu.kind != "constant" or not mu_min <= c.mu.value <= mu_max:
            yield "mu", f"with learned_mu, mu must be constant with value in learned_mu_bounds [{mu_min}, {mu_max}] (the initial mu)"
        if not 0 < c.learned_mu_lr <= 0.5:
            yield "learned_mu_lr", f"must lie in (0, 0.5] (a larger step overshoots the target), got {c.learned_mu_lr}"
        if not 0 < c.mu_target_share < 1:
            yield "mu_target_share", f"must lie in (0, 1), got {c.mu_target_share}"


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


class _Loader(yaml.SafeLoader):
    """safe_load, except that `1e-6` is a float (YAML 1.2) rather than the string YAML 1.1 makes it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """value as type tp (ints widen to float, lists to tuples), or ConfigError(name, ...)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner[:-1]:
            try:
                return _coerce(value, option, name)
            except ConfigError:
                pass
        return _coerce(value, inner[-1], name)
    if origin is dict:
        key_type, value_type = args
        if not isinstance(value, dict) or not value:
            raise ConfigError(name, f"must be a non-empty mapping of {key_type.__name__}: {value_type.__name__}, got {value!r}")
        out = {_coerce(k, key_type, f"{name} key"): _coerce(v, value_type, f"{name}[{k}]") for k, v in value.items()}
        if value_type is float and not all(v > 0 for v in out.values()):
            raise ConfigError(name, f"weights must be > 0, got {value!r}")
        return out
    if origin is Literal:
        if value not in args:
            raise ConfigError(name, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple and args[1:] == (Ellipsis,):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, f"must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(name, f"must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is MuSchedule:
        return _mu(value, name)
    if tp in NESTED:
        return _nested(value, tp, name)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {value}")
        return float(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(name, f"must be {tp.__name__}, got {value!r} ({type(value).__name__})")


def _mu_mapping(value: Any, name: str = "mu") -> dict[str, Any]:
    """mu as a raw mapping: a MuSchedule's set fields, a number as a constant schedule, or a mapping."""
    if isinstance(value, MuSchedule):
        return {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"kind": "constant", "value": value}
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping like {{kind: constant, value: 0.1}}, got {value!r}")
    return dict(value)


def _mu(value: Any, name: str) -> MuSchedule:
    """A mapping (or a plain number, meaning constant mu) as a MuSchedule."""
    value = _mu_mapping(value, name)
    hints = typing.get_type_hints(MuSchedule)
    for key in value:
        _check_known(key, hints, f"{name}.")
    if "kind" not in value:
        raise ConfigError(f"{name}.kind", f"is required, one of {sorted(PARAMS)}")
    kwargs = {key: _coerce(v, hints[key], f"{name}.{key}") for key, v in value.items()}
    try:
        return MuSchedule(**kwargs)
    except ValueError as e:
        raise ConfigError(name, str(e)) from None


NESTED = {RolloutConfig: "{group_size: 8, max_turn_tokens: 256}", LoraSpec: "{rank: 16, alpha: 32}"}
"""The nested config dataclasses set by a mapping (unset fields at their defaults), each with an example."""
_NESTED_FIELDS = {name: tp for name, hint in typing.get_type_hints(TrainConfig).items()
                  for tp in (hint, *typing.get_args(hint)) if tp in NESTED}
"""The fields that hold one of them ("rollout", "lora"), for `rollout.group_size=4`-style overrides."""


def _nested(value: Any, tp: type, name: str) -> Any:
    """A mapping (or an instance) as the nested dataclass `tp`; unset fields keep their defaults."""
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping like {NESTED[tp]}, got {value!r}")
    hints = typing.get_type_hints(tp)
    for key in value:
        _check_known(key, hints, f"{name}.")
    return tp(**{key: _coerce(v, hints[key], f"{name}.{key}") for key, v in value.items()})


def _check_known(key: str, known: typing.Iterable[str], prefix: str = "") -> None:
    if key not in known:
        if not prefix and key in typing.get_type_hints(RolloutConfig):
            raise ConfigError(key, f"unknown key; did you mean 'rollout.{key}'? (sampling settings live in `rollout`)")
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"; did you mean {prefix + close[0]!r}?" if close else f"; known: {sorted(known)}"
        raise ConfigError(f"{prefix}{key}", f"unknown key{hint}")


def _set(raw: dict[str, Any], key: str, value: Any) -> str:
    """Apply one override to the raw mapping; returns the top-level field it touched."""
    top, _, sub = key.partition(".")
    _check_known(top, _FIELDS)
    if not sub:
        raw[top] = value
        return top
    if top in _NESTED_FIELDS and "." not in sub:
        _check_known(sub, typing.get_type_hints(_NESTED_FIELDS[top]), f"{top}.")
        current = raw.get(top) or {}
        raw[top] = {**(dataclasses.asdict(current) if dataclasses.is_dataclass(current) else current), sub: value}
        return top
    if top != "mu" or "." in sub:
        raise ConfigError(key, "only mu, rollout and lora have sub-keys (mu.kind, mu.value, rollout.group_size, lora.rank, ...)")
    mu = _mu_mapping(raw.get("mu", _FIELDS["mu"].default_factory()))
    if sub == "kind" and value != mu.get("kind"):
        mu = {}
    mu[sub] = value
    raw["mu"] = mu
    return top


def load_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    """The config from the YAML file at `path` (None: defaults only), then `key=value` overrides.

    Raises one ValueError that names the file or the override and the field for: an unreadable or
    malformed file, an unknown key (with the closest known one), a value of the wrong type, an invalid
    value, a missing required field.
    """
    raw: dict[str, Any] = {}
    source: dict[str, str] = {}
    if path is not None:
        try:
            loaded = _parse(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ValueError(f"config {path}: cannot read it as YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"config {path}: must be a mapping of field: value, got {type(loaded).__name__}")
        for key, value in (loaded or {}).items():
            try:
                _check_known(str(key), _FIELDS)
            except ConfigError as e:
                raise ValueError(f"config {path}: {e}") from None
            raw[key] = value
            source[key] = f"config {path}"
    for item in overrides:
        key, eq, text = item.partition("=")
        where = f"command-line override {item!r}"
        try:
            if not eq or not key:
                raise ConfigError(key or item, "overrides look like key=value")
            try:
                value = _parse(text)
            except yaml.YAMLError as e:
                raise ConfigError(key, f"cannot parse {text!r} as a YAML value: {e}") from None
            source[_set(raw, key.strip(), value)] = where
        except ConfigError as e:
            raise ValueError(f"{where}: {e}") from None
    return _build(raw, source, f"config {path}" if path is not None else "config")


def _build(raw: dict[str, Any], source: dict[str, str], default_source: str) -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    kwargs = {}
    try:
        for name, value in raw.items():
            kwargs[name] = _coerce(value, hints[name], name)
        if "model" not in kwargs:
            raise ConfigError("model", "is required: set it in the YAML file or as model=DIR")
        return TrainConfig(**kwargs)
    except ConfigError as e:
        top = e.field.split(".")[0].split("[")[0]
        where = source.get(top, default_source)
        raise ValueError(f"{where}: {e}") from None


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, every field explicit, so load_config(path, []) == config."""
    data = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, MuSchedule):
            value = _mu_mapping(value)
        elif isinstance(value, tuple(NESTED)):
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        data[f.name] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Resolved training config (chord_env.trainer.config): rerun with `--config` on this file.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path
