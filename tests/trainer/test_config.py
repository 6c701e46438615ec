"""Training config (trainer/config.py): YAML + overrides, one clear error per bad input, round trip;
the method configs in configs/; the "switch" mu schedule."""

from pathlib import Path

import pytest

from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.config import TrainConfig, load_config, save_config
from chord_env.trainer.mu import MuSchedule, switch

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
REQUIRED = ["model=models/tiny", "expert=data/expert.jsonl"]


def test_defaults_need_only_a_model():
    config = load_config(None, ["model=m"])
    assert config == TrainConfig(model="m")
    assert config.mu == MuSchedule("constant", value=0.1) and config.token_weight == "phi"
    assert config.aggregation == "token-mean" and config.kl_coef == 0.0


def test_yaml_then_overrides_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nsteps: 7\nlr: 1e-6\nmu: {kind: constant, value: 0.2}\nbetas: [0.8, 0.99]\n")
    config = load_config(path, ["steps=4", "lr=5e-5", "steps=5", "gradient_checkpointing=true", "dual_clip_c=null"])
    assert config.steps == 5 and config.lr == 5e-5 and config.gradient_checkpointing is True
    assert config.betas == (0.8, 0.99) and config.dual_clip_c is None
    assert config.mu == MuSchedule("constant", value=0.2)
    assert load_config(path, []).lr == 1e-6  # YAML 1.1 would read 1e-6 as a string


def test_mu_overrides_switch_kind_and_accept_a_number():
    config = load_config(
        None, ["model=m", "mu.kind=chord", "mu.warmup_steps=0", "mu.decay_steps=20", "mu.peak=0.6", "mu.valley=0"]
    )
    assert config.mu == MuSchedule("chord", warmup_steps=0, decay_steps=20, peak=0.6, valley=0.0)
    assert load_config(None, ["model=m", "mu=0.3"]).mu == MuSchedule("constant", value=0.3)
    assert load_config(CONFIGS[0].parent / "chord-mu.yaml", ["model=m", "mu.peak=0.5"]).mu.peak == 0.5


@pytest.mark.parametrize(
    "overrides, names",
    [
        (["steps=abc"], ["override 'steps=abc'", "steps", "int"]),
        (["stpes=3"], ["stpes", "did you mean 'steps'"]),
        (["mu.pek=0.3"], ["mu.pek", "did you mean 'mu.peak'"]),
        (["steps=-2"], ["steps", ">= 1"]),
        (["mu=1.5"], ["mu", "[0, 1]"]),
        (["mu.value=abc"], ["mu.value", "float"]),
        (["mu.kind=chord"], ["mu", "needs"]),
        (["lr=.inf"], ["lr", "finite"]),
        (["betas=[0.9]"], ["betas", "2 values"]),
        (["dtype=fp16"], ["dtype", "one of"]),
        (["token_weight=phii"], ["token_weight", "one of"]),
        (["learned_mu=1"], ["learned_mu", "bool"]),
        (["learned_mu=true", "mu=0"], ["mu", "learned_mu"]),
        (["learned_mu=true", "learned_mu_lr=0.6"], ["learned_mu_lr", "(0, 0.5]"]),
        (["learned_mu=true", "learned_mu_bounds=[0.5, 0.2]"], ["learned_mu_bounds", "mu_min <= mu_max"]),
        (["learned_mu=true", "mu=0.1", "learned_mu_bounds=[0.2, 0.9]"], ["mu", "learned_mu_bounds [0.2, 0.9]"]),
        (["expert_per_step=0"], ["expert_per_step", "mu > 0"]),
        (["rollout.max_turn_tokens=4096", "rollout.max_context=2048"], ["rollout.max_turn_tokens", "rollout.max_context"]),
        (["steps"], ["steps", "key=value"]),
        (["steps=[1"], ["steps", "YAML"]),
    ],
)
def test_bad_overrides_give_one_clear_error(overrides, names):
    with pytest.raises(ValueError) as e:
        load_config(None, ["model=m", *overrides])
    for name in names:
        assert name in str(e.value)


def test_bad_files_name_the_file_and_field(tmp_path):
    cases = {
        "typo.yaml": ("model: m\nlearning_rate: 0.1\n", "learning_rate"),
        "type.yaml": ("model: m\nrollout: {group_size: eight}\n", "rollout.group_size"),
        "value.yaml": ("model: m\nrollout: {top_p: 0}\n", "rollout.top_p"),
        "mu.yaml": ("model: m\nmu: {kind: chord, peak: 0.6}\n", "mu"),
        "broken.yaml": ("model: m\nsteps: [1, 2\n", "YAML"),
        "list.yaml": ("- model\n", "mapping"),
        "nomodel.yaml": ("steps: 3\n", "model"),
    }
    for name, (text, field) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError) as e:
            load_config(tmp_path / name, [])
        assert name in str(e.value) and field in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml", [])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_method_config_loads_and_round_trips(path, tmp_path):
    assert path.read_text().startswith("# "), "each config opens with a comment saying what method it is"
    config = load_config(path, REQUIRED)
    saved = save_config(config, tmp_path / "config.yaml")
    assert load_config(saved, []) == config
    text = saved.read_text()
    for field in ("token_weight", "aggregation", "kl_coef", "mu", "eps_low", "dual_clip_c", "learned_mu"):
        assert f"\n{field}:" in text


def test_method_configs_define_the_methods():
    by_name = {p.stem: load_config(p, REQUIRED) for p in CONFIGS}
    assert len(by_name) == 14  # 13 methods and the demo's recipe
    mu = {name: [c.mu(step) for step in range(c.steps)] for name, c in by_name.items()}
    assert set(mu["grpo"]) == {0.0} and set(mu["sft"]) == {1.0}
    assert mu["sft-then-grpo"] == [1.0] * 10 + [0.0] * 10 and by_name["sft-then-grpo"].second_stage_lr < by_name["sft-then-grpo"].lr
    assert mu["chord-phi-warm"] == [1.0] * 10 + [0.1] * 10 and by_name["chord-phi-warm"].token_weight == "phi"
    assert mu["chord-mu"][0] == 0.6 and mu["chord-mu"][10] == pytest.approx(0.3)
    assert by_name["chord-phi"].token_weight == "phi" and by_name["chord-mu"].token_weight == "none"
    assert by_name["chord-learned-mu"].learned_mu
    demo = by_name["demo"]
    assert mu["demo"][0] == 1.0 and 0 < mu["demo"][-1] < 1 and demo.token_weight == "none"
    weights = {by_name[n].token_weight for n in ("chord-phi-prob", "chord-entropy", "chord-focal", "chord-margin")}
    assert weights | {by_name["chord-lowprob"].token_weight} == {"prob", "entropy", "focal", "margin", "low_prob"}


def test_switch_schedule():
    assert [switch(step, before=1.0, after=0.0, at=3) for step in range(5)] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert switch(0, before=0.2, after=0.7, at=0) == 0.7
    schedule = MuSchedule("switch", before=1.0, after=0.0, at=2)
    assert [schedule(step) for step in range(3)] == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="needs"):
        MuSchedule("switch", before=1.0, after=0.0)
    with pytest.raises(ValueError, match="at"):
        MuSchedule("switch", before=1.0, after=0.0, at=-1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        switch(0, before=1.5, after=0.0, at=1)


def test_env_and_expert_mixes_load_check_and_round_trip(tmp_path):
    config = load_config(None, ["model=m", "env={chord/A-v0: 3, chord/B-v0: 1}", "expert={a.jsonl: 0.8, b.jsonl: 0.2}"])
    assert config.env == {"chord/A-v0": 3.0, "chord/B-v0": 1.0} and config.expert == {"a.jsonl": 0.8, "b.jsonl": 0.2}
    assert load_config(save_config(config, tmp_path / "c.yaml"), []) == config
    assert load_config(None, ["model=m", "expert=one.jsonl"]).expert == "one.jsonl"
    with pytest.raises(ValueError, match="expert"):
        load_config(None, ["model=m", "expert={a.jsonl: 0}"])
    with pytest.raises(ValueError, match="env"):
        load_config(None, ["model=m", "env=[1, 2]"])


def test_rollout_is_the_runners_own_config_nested():
    config = load_config(None, ["model=m", "rollout.group_size=4", "rollout.temperature=0.7"])
    assert config.rollout == RolloutConfig(group_size=4, temperature=0.7)
    for override, hint in [("group_size=4", "rollout.group_size"), ("rollout.groupsize=4", "rollout.group_size"),
                           ("rollout.group_size.x=4", "sub-keys"), ("rollout.seed=3", "run's `seed`")]:
        with pytest.raises(ValueError, match=hint.replace(".", r"\.")):
            load_config(None, ["model=m", override])

