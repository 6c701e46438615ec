"""Function-catalogue tasks: experts earn full reward in every shape, wrong calls earn nothing, the
splits are disjoint (seeds and functions), no function shares a name with BFCL, rows load as SFT
traces within the token budget."""

import copy
import glob
import json
import os
import re
from collections import Counter

import numpy as np
import pytest

import chord_env
from chord_env.chat import ChatRenderer
from chord_env.envs import FunctionCallEnv
from chord_env.envs.data_build import fc_rows, task_from_json
from chord_env.envs.function_catalog import CATALOG, DOMAINS
from chord_env.envs.function_dsl import Enum, Nums, Obj, Strs
from chord_env.envs.function_tasks import HELD_OUT, SHAPES, TRAIN_SEEDS, VALIDATION_SEEDS, function_task, task_for_seed
from chord_env.parsing import format_hermes
from chord_env.trainer.expert import load_expert, render_expert
from chord_env.types import Message, ToolCall, ToolSpec

N = 1500


@pytest.fixture(scope="module")
def tasks():
    return {split: [task_for_seed(seeds.start + k, split) for k in range(N)]
            for split, seeds in (("train", TRAIN_SEEDS), ("validation", VALIDATION_SEEDS))}


def play(task, action):
    env = FunctionCallEnv(tasks=[task])
    env.reset(options={"task": task})
    _, reward, terminated, _, info = env.step(action)
    assert terminated
    return reward, info


def first(tasks, want):
    return next(t for t in tasks if want(t))


def test_catalogue_size_and_types():
    assert len(CATALOG) >= 200 and len(DOMAINS) >= 25
    params = [p for fn in CATALOG.values() for p in fn.params]
    types = Counter(p.sampler.schema()["type"] for p in params)
    assert {"integer", "number", "string", "boolean", "array", "object"} <= set(types)
    assert any(isinstance(p.sampler, Enum) for p in params) and any(isinstance(p.sampler, Obj) for p in params)
    assert any(isinstance(p.sampler, Strs) for p in params) and any(isinstance(p.sampler, Nums) for p in params)
    assert sum(not p.required for p in params) > 100
    assert sum("." in name for name in CATALOG) > 100 and sum("." not in name for name in CATALOG) > 30


def test_every_shape_replays_to_full_reward(tasks):
    for split, split_tasks in tasks.items():
        shapes = Counter()
        for task in split_tasks:
            reward, info = play(task, task.expert[0])
            assert reward == 1.0 and info["success"] is True, (task.id, task.prompt, task.expert)
            shapes[task.info["shape"]] += 1
        assert set(shapes) == set(SHAPES), shapes
    calls = Counter(len(t.answer) for t in tasks["train"])
    assert {0, 1, 2, 3, 4} <= set(calls)


def test_shapes_have_their_form(tasks):
    for task in tasks["train"]:
        shape, offered, calls = task.info["shape"], task.info["functions"], task.answer
        assert [t.name for t in task.tools] == offered and len(set(offered)) == len(offered)
        if shape == "simple":
            assert len(offered) == 1 and len(calls) == 1
        elif shape == "multiple":
            assert 2 <= len(offered) <= 4 and len(calls) == 1
        elif shape == "parallel":
            assert len(offered) == 1 and 2 <= len(calls) <= 4 and len({c.name for c in calls}) == 1
        elif shape == "parallel_multiple":
            assert 2 <= len(calls) <= 4 and len({c.name for c in calls}) >= 2 and len(offered) <= 4
        else:
            assert calls == [] and 1 <= len(offered) <= 3 and "<tool_call>" not in task.expert[0]
            assert len(task.expert[0]) < 90


def test_wrong_calls_earn_nothing(tasks):
    train = tasks["train"]
    simple = first(train, lambda t: t.info["shape"] == "simple" and len(t.answer[0].arguments) >= 2)
    call = simple.answer[0]
    key = next(iter(call.arguments))
    wrong = copy.deepcopy(call)
    value = wrong.arguments[key]
    wrong.arguments[key] = (value + 1) if isinstance(value, (int, float)) and not isinstance(value, bool) else "something else"
    assert play(simple, format_hermes([wrong]))[0] == 0.0
    required = CATALOG[call.name].schema()["required"]
    missing = ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != required[0]})
    assert play(simple, format_hermes([missing]))[0] == 0.0
    reward, info = play(simple, format_hermes([call, call]))
    assert reward == 0.0 and info["success"] is False
    assert play(simple, "I can't help with that.")[0] == 0.0
    renamed = ToolCall(call.name, {**call.arguments, "extra_argument": 1})
    assert play(simple, format_hermes([renamed]))[0] == 0.0
    parallel = first(train, lambda t: t.info["shape"] == "parallel")
    assert play(parallel, format_hermes(parallel.answer[:-1]))[0] == 0.0
    assert play(parallel, format_hermes(list(reversed(parallel.answer))))[0] == 1.0
    irrelevant = first(train, lambda t: t.info["shape"] == "irrelevance")
    fn = CATALOG[irrelevant.info["functions"][0]]
    made_up = ToolCall(fn.name, {p.name: "x" for p in fn.params if p.required})
    assert play(irrelevant, format_hermes([made_up]))[0] == 0.0


def test_optional_parameters_may_be_omitted_or_given_their_default(tasks):
    def has_unstated_optional(task):
        if task.info["shape"] != "simple":
            return False
        fn = CATALOG[task.answer[0].name]
        return any(not p.required and p.name not in task.answer[0].arguments for p in fn.params)

    checked = 0
    for task in [t for t in tasks["train"] if has_unstated_optional(t)][:20]:
        call = task.answer[0]
        fn = CATALOG[call.name]
        p = next(p for p in fn.params if not p.required and p.name not in call.arguments)
        assert play(task, format_hermes([call]))[0] == 1.0
        assert play(task, format_hermes([ToolCall(call.name, {**call.arguments, p.name: p.default})]))[0] == 1.0
        other = p.sampler.draw(np.random.default_rng(checked)).value
        if other != p.default:
            assert play(task, format_hermes([ToolCall(call.name, {**call.arguments, p.name: other})]))[0] == 0.0
            checked += 1
    assert checked >= 5


def test_stated_optional_parameters_are_in_the_expert_call(tasks):
    stated = [p for t in tasks["train"] for c in t.answer for p in CATALOG[c.name].params if not p.required and p.name in c.arguments]
    assert len(stated) > 200


def test_values_come_in_the_forms_small_models_get_wrong(tasks):
    prompts = " ".join(t.prompt for t in tasks["train"])
    for pattern in (r"\d+(?:km|kg|cm|ml|min|m/s)\b", r"\d+ (?:kilometers|kilograms|kilos|pounds|miles)", r"\bdozen\b", r"\d(?:\.\d+)?%",
                    r"\bpercent\b", r"(?:January|March|July) \d+(?:st|nd|rd|th)?, 20\d\d", r"\b\d+(?:st|nd|rd|th) of [A-Z]",
                    r"\b\d{1,2}(?::\d\d)? ?(?:am|pm|AM|PM)\b", r"\$\d{1,3}(?:,\d{3})+", r"\b(?:twelve|twenty|seven|eleven)\b", r"\[\d+, \d+"):
        assert re.search(pattern, prompts), pattern
    args = [c.arguments for t in tasks["train"] for c in t.answer]
    assert any(isinstance(v, dict) for a in args for v in a.values())
    assert any(re.fullmatch(r"20\d\d-\d\d-\d\d", str(v)) for a in args for v in a.values())


def test_schema_spellings_are_mixed(tasks):
    styles = Counter(t.info["schema_style"] for t in tasks["train"])
    assert 0.4 < styles["bfcl"] / N < 0.6
    bfcl = [json.dumps(s.parameters) for t in tasks["train"] if t.info["schema_style"] == "bfcl" for s in t.tools]
    assert not any(re.search(r'"type": "(?:object|number)"', s) for s in bfcl)
    assert any('"tuple"' in s for s in bfcl) and any('"dict"' in s for s in bfcl) and any("Default is" in s for s in bfcl)


def _bfcl_function_names() -> set[str]:
    bfcl_eval = pytest.importorskip("bfcl_eval")
    data = os.path.join(os.path.dirname(bfcl_eval.__file__), "data")
    names: set[str] = set()
    files = glob.glob(os.path.join(data, "**", "*.json"), recursive=True)
    assert any(f.endswith("BFCL_v4_simple_python.json") for f in files)
    for path in files:  # single-turn, live and multi-turn entries, and the multi-turn function docs
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("function"), list):
                    names |= {fn["name"] for fn in entry["function"] if isinstance(fn, dict) and "name" in fn}
                if isinstance(entry, dict) and "name" in entry and "parameters" in entry:
                    names.add(entry["name"])
    return names


def test_no_catalogue_function_shares_a_name_with_bfcl():
    names = _bfcl_function_names()
    assert len(names) > 1000
    assert not set(CATALOG) & names, sorted(set(CATALOG) & names)


def test_splits_are_disjoint_in_seeds_and_functions(tasks):
    assert TRAIN_SEEDS.stop <= VALIDATION_SEEDS.start
    assert 0.1 < len(HELD_OUT) / len(CATALOG) < 0.2 and len({CATALOG[n].domain for n in HELD_OUT}) >= 10
    train_offered = {n for t in tasks["train"] for n in t.info["functions"]}
    assert not train_offered & HELD_OUT and len(train_offered) > 0.8 * (len(CATALOG) - len(HELD_OUT))
    for task in tasks["validation"]:
        own = set(task.info["called"]) if task.answer else set(task.info["functions"]) & HELD_OUT
        assert own and own <= HELD_OUT, task.id
    seeds = {s: {t.info["seed"] for t in ts} for s, ts in tasks.items()}
    assert not seeds["train"] & seeds["validation"]
    texts = {s: {(t.prompt, tuple(t.info["functions"]), json.dumps([[c.name, c.arguments] for c in t.answer])) for t in ts} for s, ts in tasks.items()}
    assert not texts["train"] & texts["validation"]
    with pytest.raises(ValueError):
        task_for_seed(VALIDATION_SEEDS.start, "train")


def test_tasks_are_a_function_of_seed_and_split():
    for seed in (0, 7, 123_456):
        a, b = task_for_seed(seed), task_for_seed(seed)
        assert (a.prompt, a.answer, a.expert, a.tools, a.info) == (b.prompt, b.answer, b.expert, b.tools, b.info)
    assert len({task_for_seed(s).prompt for s in range(50)}) == 50
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert function_task(rng_a, "validation").prompt == function_task(rng_b, "validation").prompt


def test_registered_env_is_deterministic_per_seed_and_split():
    env = chord_env.make("chord/FunctionCatalog-v0", split="validation")
    first_obs, info = env.reset(seed=11)
    again, info_again = env.reset(seed=11)
    assert first_obs[0].content == again[0].content and info["task_id"] == info_again["task_id"]
    assert info["task_id"].startswith("fc-validation-") and info["tools"]
    _, reward, *_ = env.step(env.unwrapped.expert_actions()[0])
    assert reward == 1.0
    train = chord_env.make("chord/FunctionCatalog-v0", weights={"parallel": 1.0})
    _, info = train.reset(seed=11)
    assert info["task_id"].startswith("fc-train-parallel-")
    with pytest.raises(ValueError):
        chord_env.make("chord/FunctionCatalog-v0", split="test")


def test_rows_replay_and_load_as_expert_traces(tmp_path, smollm2_tokenizer):
    rows = fc_rows(60, "train") + fc_rows(20, "validation")
    assert {r["split"] for r in rows} == {"fc_train", "fc_validation"}
    for row in rows:
        task = task_from_json(row["task"])
        assert play(task, task.expert[0])[0] == 1.0
    path = tmp_path / "fc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    renderer = ChatRenderer(smollm2_tokenizer)
    sequences = load_expert(path, renderer)
    assert len(sequences) == len(rows) and all(sum(s.loss_mask) > 0 for s in sequences)
    trained = smollm2_tokenizer.decode([t for t, m in zip(sequences[0].token_ids, sequences[0].loss_mask) if m])
    assert trained == task_from_json(rows[0]["task"]).expert[0] + "<|im_end|>"


def test_rendered_traces_fit_the_token_budget(smollm2_tokenizer):
    renderer = ChatRenderer(smollm2_tokenizer)
    lengths = []
    for row in fc_rows(300, "train"):
        messages = [Message.from_openai(m) for m in row["messages"]]
        tools = [ToolSpec.from_openai(t) for t in row["tools_shown"]]
        lengths.append(len(render_expert(renderer, messages, tools).token_ids))
    assert 150 <= float(np.mean(lengths)) <= 400, np.mean(lengths)


def test_build_function_rows_is_fast_and_build_writes_fc_files(tmp_path):
    import time

    from chord_env.envs.data_build import build, build_function_rows

    started = time.monotonic()
    report = build_function_rows(tmp_path / "fc", n=3000, seed=1)
    assert time.monotonic() - started < 20
    assert report["rows"] == {"fc_train": 3000, "fc_validation": 300} and set(report["shapes"]) == set(SHAPES)
    lines = (tmp_path / "fc" / "fc_train.jsonl").read_text().splitlines()
    assert len(lines) == 3000 and json.loads(lines[0])["id"] == "fc-train-" + task_for_seed(1).info["shape"] + "-1"
    report = build(tmp_path / "all", worlds=["bank"], n=4, seed=0, math_n=0, fc_n=30)
    assert report["rows"]["fc_train"] == 30 and report["rows"]["fc_validation"] == 3
    assert "Function-calling tasks" in (tmp_path / "all" / "README.md").read_text()
    build(tmp_path / "fc", worlds=["bank"], n=4, math_n=0, fc_n=0)  # leaves the 3000 rows alone
    assert len((tmp_path / "fc" / "fc_train.jsonl").read_text().splitlines()) == 3000
