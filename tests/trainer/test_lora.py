"""LoRA (trainer/lora.py): only the adapters train, merged weights equal the adapted model, the initial
policy comes from switching the adapters off, the config takes `lora.*`, and a LoRA run checkpoints
its adapter alone, resumes to the same weights and leaves a merged model that loads without peft.
The engine side (merged weights through the vLLM in-place sync, parity in a run) is
tests/agents/test_lora_sync.py."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from vowel_env import ENV_ID, WORDS

from chord_env.agents.runner import RolloutConfig
from chord_env.agents.weight_sync import has_adapters, merged_state_dict
from chord_env.trainer.batching import Sequence, pack
from chord_env.trainer.config import TrainConfig, load_config, save_config
from chord_env.trainer.logprobs import token_logprobs
from chord_env.trainer.lora import InitialPolicy, LoraSpec, add_adapters, merged_model
from chord_env.trainer.metrics import read_metrics
from chord_env.trainer.train import make_optimizer, train, update

pytest.importorskip("peft", reason='LoRA needs the lora extra: pip install -e ".[lora]"')

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("expert") / "vowels.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say something about the {w}."}, {"role": "assistant", "content": "a e i o u"}], "tools": []}
            for w in WORDS]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sequences():
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(16, 49000, (n,), generator=g).tolist() for n in (12, 20)]
    return [Sequence(x, [0] * 4 + [1] * (len(x) - 4), [0.0] * len(x), a) for x, a in zip(ids, (1.0, -0.5))]


def trained(base, model_dir, **lora):
    """(the adapted module, its PeftModel, the config) after two SFT steps at a large rate (the first
    moves B alone, B being 0 at the start; the second moves A too), so B A != 0."""
    config = TrainConfig(model=str(model_dir), lora=LoraSpec(**lora), lr=5e-2, rollout=RolloutConfig(max_turn_tokens=8, max_context=64))
    model = copy.deepcopy(base).train()
    adapted = add_adapters(model, config.lora)
    optimizer = make_optimizer(model, config)
    for _ in range(2):
        update(model, optimizer, [], sequences(), 1.0, config, pad_id=0)
    return model.eval(), adapted, config


def logp(model, seqs):
    batch = pack(seqs, 10_000)[0]
    with torch.no_grad():
        return token_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask)["logp"]


def test_only_the_adapters_are_optimized_and_the_base_weights_stay(base, tiny_model_dir):
    model, adapted, config = trained(base, tiny_model_dir, rank=4)
    optimized = {id(p) for group in make_optimizer(model, config).param_groups for p in group["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in optimized}
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == ALL_LINEAR  # "all-linear": not the LM head
    before = base.state_dict()
    for key, tensor in model.state_dict().items():
        if ".lora_" not in key:
            assert torch.equal(tensor, before[key.replace(".base_layer.", ".")]), key
    assert all(float(p.detach().abs().max()) > 0 for n, p in model.named_parameters() if ".lora_B." in n)
    assert has_adapters(model) and not has_adapters(base)


def test_merged_weights_are_the_adapted_model_under_plain_names(base, tiny_model_dir):
    model, adapted, _ = trained(base, tiny_model_dir, rank=4, target_modules=r".*\.(q_proj|down_proj)")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    merged = merged_state_dict(model)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the module is untouched
    assert merged.keys() == base.state_dict().keys()
    plain = copy.deepcopy(base)
    plain.load_state_dict(merged)
    torch.testing.assert_close(logp(plain, sequences()), logp(model, sequences()), rtol=0, atol=1e-5)
    assert float((logp(plain, sequences()) - logp(base, sequences())).abs().max()) > 1e-3  # the adapters count
    unloaded = merged_model(copy.deepcopy(adapted)).state_dict()
    assert all(torch.equal(merged[k], unloaded[k]) for k in merged)  # what peft's own merge gives


def test_the_initial_policy_is_the_model_with_its_adapters_off(base, tiny_model_dir):
    model, adapted, _ = trained(base, tiny_model_dir)
    initial = InitialPolicy(adapted)
    assert torch.equal(logp(initial, sequences()), logp(base, sequences()))
    assert float((logp(model, sequences()) - logp(base, sequences())).abs().max()) > 1e-3  # adapters back on after


def test_an_adapted_tied_output_layer_is_refused(base):
    with pytest.raises(ValueError, match="tied"):
        add_adapters(copy.deepcopy(base), LoraSpec(target_modules=r".*(q_proj|lm_head)"))


def test_config_takes_lora_keys_and_round_trips(tmp_path):
    assert load_config(None, ["model=m"]).lora is None
    config = load_config(None, ["model=m", "lora.rank=8", "lora.target_modules=.*q_proj"])
    assert config.lora == LoraSpec(rank=8, target_modules=".*q_proj")
    assert load_config(save_config(config, tmp_path / "c.yaml"), []) == config
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nlora: {rank: 4, alpha: 8}\n")
    assert load_config(path, []).lora == LoraSpec(rank=4, alpha=8.0)
    assert load_config(path, ["lora=null"]).lora is None
    for override, field in (("lora.rank=0", "lora.rank"), ("lora.dropout=1", "lora.dropout"), ("lora.rnk=4", "lora.rank"),
                            ("data_parallel=fsdp2", "lora")):
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            load_config(None, ["model=m", "lora.rank=4", override])


def run_config(model_dir, expert, out, *extra):
    return load_config(CONFIGS / "chord-phi.yaml", [
        f"model={model_dir}", f"env={ENV_ID}", f"expert={expert}", f"out={out}", "backend=hf", "lora.rank=4",
        "tasks_per_step=2", "rollout.group_size=4", "expert_per_step=4", "rollout.max_turn_tokens=1", "rollout.max_context=64",
        "micro_batch_tokens=512", "lr=5e-2", "seed=2", "eval_every=0", "checkpoint_every=1", *extra,
    ])


def test_a_lora_run_checkpoints_its_adapter_resumes_and_saves_merged_weights(tiny_model_dir, expert_file, tmp_path):
    straight = train(run_config(tiny_model_dir, expert_file, tmp_path / "straight", "steps=2"))
    first = train(run_config(tiny_model_dir, expert_file, tmp_path / "resumed", "steps=1"))
    resumed = train(load_config(first / "config.yaml", ["steps=2"]), resume=True)

    checkpoint = straight / "checkpoints" / "step-000002" / "model"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {f.name for f in checkpoint.iterdir()}
    assert not list(checkpoint.glob("model*.safetensors"))  # the adapter alone, not the model
    a, b = load_file(checkpoint / "adapter_model.safetensors"), load_file(resumed / "checkpoints" / "step-000002" / "model" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    final = straight / "final"
    assert not (final / "adapter_config.json").exists()
    weights, initial = load_file(final / "model.safetensors"), load_file(Path(tiny_model_dir) / "model.safetensors")
    assert weights.keys() == initial.keys()  # plain transformers names: loads without peft
    assert any(not torch.equal(weights[k], initial[k]) for k in weights), "training changed nothing"
    again = load_file(resumed / "final" / "model.safetensors")
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    AutoModelForCausalLM.from_pretrained(final)

    kl = [m["grpo/kl_ref"] for m in read_metrics(straight / "metrics.jsonl")]
    assert abs(kl[0]) < 1e-6 and kl[-1] > 0, kl  # step 1 samples from the initial weights (B = 0)
