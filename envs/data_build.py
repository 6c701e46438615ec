"""`chord-env data build|show`: tool-world and math datasets as JSON lines, with a dataset card.

Splits (disjoint by construction):
- `train`: training worlds (`TRAIN_WORLDS`), task seeds `TRAIN_SEEDS.start + seed + k`;
- `validation`: the same worlds, seeds from `VALIDATION_SEEDS` (never used for training);
- `held_out`: whole worlds never used for training (`HELD_OUT`), seeds from `HELD_OUT_SEEDS`.
Math tasks (reasoning-gym) go to `math_train` / `math_validation` with the same seed ranges.
Single-turn function-calling tasks from our function catalogue (`function_tasks`, BFCL's five
shapes) go to `fc_train` / `fc_validation`, with that module's seed ranges; validation calls only
functions that train never offers. `fc_rows(n, split)` builds such rows on its own (fast: a few
thousand a second).

Each row: `id`, `world`, `pattern`, `split`, `messages` (OpenAI format; assistant tool calls with
ids and JSON-string arguments, tool results produced by executing the calls in a fresh world),
`tools` (the specs the model saw, a JSON string: their schemas differ row to row) and `task` (the
task as a JSON string, enough to rebuild it and replay it in its env). Every world trace is
replayed through its env while building and must earn `MAX_REWARD`, or the build fails.
`datasets.load_dataset("json", data_files=...)` loads the files.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from tqdm import tqdm

from chord_env.envs.function_call_env import FunctionCallEnv
from chord_env.envs.function_tasks import SEEDS as FC_SEEDS
from chord_env.envs.function_tasks import task_for_seed as fc_task
from chord_env.envs.math_tasks import GENERATORS, math_task
from chord_env.envs.splits import HELD_OUT_SEEDS, TRAIN_SEEDS, VALIDATION_SEEDS  # noqa: F401 (re-exported)
from chord_env.envs.task import Task
from chord_env.envs.world_tasks import world_task
from chord_env.envs.worlds import MAX_REWARD, world_env
from chord_env.tools.worlds import HELD_OUT, TRAIN_WORLDS
from chord_env.types import Message, ToolCall


def task_to_json(task: Task) -> str:
    """The task as JSON; an answer of `ToolCall`s is written as `{"name", "arguments"}` objects."""
    prompt = [m.to_openai() for m in task.prompt] if isinstance(task.prompt, list) else task.prompt
    answer = task.answer
    if isinstance(answer, list) and all(isinstance(c, ToolCall) for c in answer) and "shape" in task.info:
        answer = [{"name": c.name, "arguments": c.arguments} for c in answer]
    return json.dumps({"id": task.id, "prompt": prompt, "answer": answer, "expert": task.expert, "info": task.info})


def task_from_json(text: str) -> Task:
    data = json.loads(text)
    prompt = [Message.from_openai(m) for m in data["prompt"]] if isinstance(data["prompt"], list) else data["prompt"]
    answer = data["answer"]
    if "shape" in data["info"]:  # a function-calling task: its answer is the expected calls
        answer = [ToolCall(c["name"], c["arguments"]) for c in answer]
    return Task(prompt=prompt, answer=answer, expert=data["expert"], id=data["id"], info=data["info"])


def _message_row(message: Message) -> dict[str, Any]:
    """A message with every key present (one schema for all rows, as Arrow wants)."""
    data = message.to_openai()
    return {"role": data["role"], "content": data["content"], "tool_calls": data.get("tool_calls", []),
            "tool_call_id": data.get("tool_call_id"), "name": data.get("name")}


def world_row(task: Task, split: str, env: Any) -> dict[str, Any]:
    """Replay the task's expert through `env` and return its dataset row; raises if not full reward."""
    _, info = env.reset(options={"task": task})
    reward, done = 0.0, False
    for action in task.expert:
        _, reward, terminated, truncated, step_info = env.step(action)
        done = terminated or truncated
    if not done or abs(reward - MAX_REWARD) > 1e-9 or not step_info["success"]:
        raise RuntimeError(f"{task.id}: the expert trace earned {reward} (done={done}), not {MAX_REWARD}")
    tools = [spec.to_openai() for spec in info["tools"]]
    return {"id": task.id, "world": task.info["world"], "pattern": task.info["pattern"], "split": split,
            "messages": [_message_row(m) for m in env.unwrapped.messages], "tools": json.dumps(tools),
            "task": task_to_json(task), "reward": reward}


def math_row(task: Task, split: str) -> dict[str, Any]:
    messages = [Message("user", task.prompt), Message("assistant", task.expert[0])]
    return {"id": task.id, "world": task.info["world"], "pattern": "math", "split": split,
            "messages": [_message_row(m) for m in messages], "tools": "[]", "task": task_to_json(task), "reward": 1.0}


def fc_row(task: Task, split: str, env: FunctionCallEnv) -> dict[str, Any]:
    """Replay a function-calling task's expert through `env` and return its row; raises unless solved."""
    env.reset(options={"task": task})
    _, reward, _, _, info = env.step(task.expert[0])
    if reward != 1.0 or not info["success"]:
        raise RuntimeError(f"{task.id}: the expert earned {reward} ({info})")
    calls = [ToolCall(c.name, c.arguments, id=f"call_{i}") for i, c in enumerate(task.answer)]
    messages = [Message("user", task.prompt), Message("assistant", "" if calls else task.expert[0], tool_calls=calls)]
    return {"id": task.id, "world": "function_catalog", "pattern": task.info["shape"], "split": split,
            "messages": [_message_row(m) for m in messages], "tools": json.dumps([t.to_openai() for t in task.tools]),
            "task": task_to_json(task), "reward": reward}


def fc_rows(n: int, split: str = "train", seed: int = 0, weights: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """`n` replayed function-calling rows of `split`, from seeds `split start + seed + k`."""
    env = FunctionCallEnv(tasks=[fc_task(FC_SEEDS[split].start, split)])
    start = FC_SEEDS[split].start + seed
    return [fc_row(fc_task(start + k, split, weights), f"fc_{split}", env) for k in range(n)]


def build_function_rows(out: str | Path, n: int, seed: int = 0, weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Write `fc_train.jsonl` (`n` rows) and `fc_validation.jsonl` (`max(1, n // 10)`) into `out`;
    returns the rows per split and the shape counts. ~3000 rows take about a second."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {"fc_train": fc_rows(n, "train", seed, weights), "fc_validation": fc_rows(max(1, n // 10), "validation", seed, weights)}
    for split, split_rows in rows.items():
        _write(out / f"{split}.jsonl", split_rows)
    return {"rows": {s: len(r) for s, r in rows.items()}, "shapes": dict(Counter(r["pattern"] for r in rows["fc_train"]).most_common())}


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(out: str | Path, worlds: Sequence[str] | None = None, n: int = 100, seed: int = 0, math_n: int | None = None,
          fc_n: int | None = None) -> dict[str, Any]:
    """Write the splits and the dataset card into `out`; returns the diversity report.

    `n` tasks per training world go to train, `max(1, n // 10)` to validation, `max(1, n // 2)`
    per held-out world to held_out; `math_n` (default `n`) math tasks to math_train and a tenth to
    math_validation. `worlds` restricts the worlds (held-out ones still only reach held_out).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = list(worlds or (*TRAIN_WORLDS, *HELD_OUT))
    train_worlds = [w for w in chosen if w not in HELD_OUT]
    held_worlds = [w for w in chosen if w in HELD_OUT]
    math_n = n if math_n is None else math_n
    fc_n = n if fc_n is None else fc_n
    if seed < 0 or seed + n > len(VALIDATION_SEEDS):
        raise ValueError(f"seed + n must be within 0..{len(VALIDATION_SEEDS)}, got seed={seed}, n={n}")
    plan = [("train", w, TRAIN_SEEDS.start + seed + k) for w in train_worlds for k in range(n)]
    plan += [("validation", w, VALIDATION_SEEDS.start + seed + k) for w in train_worlds for k in range(max(1, n // 10))]
    plan += [("held_out", w, HELD_OUT_SEEDS.start + seed + k) for w in held_worlds for k in range(max(1, n // 2))]
    envs = {w: world_env(w) for w in chosen}
    started = time.monotonic()
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "held_out": [], "math_train": [], "math_validation": [],
                                             "fc_train": [], "fc_validation": []}
    for split, world, task_seed in tqdm(plan, desc="world tasks", unit="task"):
        rows[split].append(world_row(world_task(world, task_seed), split, envs[world]))
    math_plan = [("math_train", TRAIN_SEEDS.start + seed + k) for k in range(math_n)]
    math_plan += [("math_validation", VALIDATION_SEEDS.start + seed + k) for k in range(max(1, math_n // 10))] if math_n else []
    for k, (split, task_seed) in enumerate(tqdm(math_plan, desc="math tasks", unit="task")):
        rows[split].append(math_row(math_task(GENERATORS[k % len(GENERATORS)], task_seed), split))
    if fc_n:
        rows["fc_train"], rows["fc_validation"] = fc_rows(fc_n, "train", seed), fc_rows(max(1, fc_n // 10), "validation", seed)
    for split, split_rows in rows.items():
        if split.startswith("fc_") and not fc_n:
            continue  # fc_n=0 leaves any fc files already in `out` alone
        _write(out / f"{split}.jsonl", split_rows)
    report = diversity(rows)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["args"] = {"worlds": chosen, "n": n, "seed": seed, "math_n": math_n, "fc_n": fc_n}
    (out / "README.md").write_text(dataset_card(report), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _call_shape(messages: list[dict[str, Any]]) -> str:
    """Calls per assistant turn, e.g. "1+2+0" (0 = a message to the user)."""
    return "+".join(str(len(m["tool_calls"])) for m in messages if m["role"] == "assistant")


def diversity(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Counts per split, world and pattern, and the diversity of tools, call shapes, turns and wordings."""
    world_rows = [r for split in ("train", "validation", "held_out") for r in rows[split]]
    tasks = [json.loads(r["task"]) for r in world_rows]
    tools = Counter(c["function"]["name"] for r in world_rows for m in r["messages"] for c in m["tool_calls"])
    requests = {m["content"] for r in world_rows for m in r["messages"] if m["role"] == "user"}
    return {
        "rows": {split: len(split_rows) for split, split_rows in rows.items()},
        "patterns": dict(Counter(r["pattern"] for r in world_rows).most_common()),
        "worlds": {split: dict(Counter(r["world"] for r in rows[split])) for split in rows},
        "distinct_tools_called": len(tools),
        "call_shapes": dict(Counter(_call_shape(r["messages"]) for r in world_rows).most_common(12)),
        "distinct_call_shapes": len({_call_shape(r["messages"]) for r in world_rows}),
        "assistant_turns": dict(sorted(Counter(sum(m["role"] == "assistant" for m in r["messages"]) for r in world_rows).items())),
        "distinct_request_texts": len(requests),
        "distinct_wording_templates": len({w for t in tasks for w in t["info"]["wordings"]}),
        "schema_styles": dict(Counter(t["info"]["schema_style"] for t in tasks)),
        "fc_shapes": dict(Counter(r["pattern"] for s in ("fc_train", "fc_validation") for r in rows.get(s, [])).most_common()),
        "fc_distinct_functions_called": len({c["function"]["name"] for s in ("fc_train", "fc_validation") for r in rows.get(s, [])
                                             for m in r["messages"] for c in m["tool_calls"]}),
    }


def dataset_card(report: dict[str, Any]) -> str:
    def table(counts: dict[str, Any], head: str) -> str:
        return f"| {head} | count |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())

    args = report["args"]
    return f"""# chord-env tool-use and math data

Built by `chord-env data build --n {args['n']} --seed {args['seed']}` in {report['seconds']} s from worlds
{', '.join(args['worlds'])}. Every tool-world trace was replayed through its environment and earned
the full reward. Held-out worlds ({', '.join(HELD_OUT)}) appear only in `held_out.jsonl`.

Seeds: train {TRAIN_SEEDS.start}+, validation {VALIDATION_SEEDS.start}+, held-out {HELD_OUT_SEEDS.start}+
(offset by `--seed`); the ranges are disjoint.

## Rows per split
{table(report['rows'], 'split')}

## Tasks per pattern (world splits)
{table(report['patterns'], 'pattern')}

## Diversity
- distinct tools called: {report['distinct_tools_called']}
- distinct call shapes (calls per assistant turn): {report['distinct_call_shapes']}
- distinct request texts (user messages): {report['distinct_request_texts']}
- distinct wording templates: {report['distinct_wording_templates']}
- schema spellings shown: {report['schema_styles']}

{table(report['assistant_turns'], 'assistant turns per task')}

## Function-calling tasks (fc_train, fc_validation)
Single-turn requests over our own function catalogue (none of BFCL's functions); fc_validation
calls only functions that fc_train never offers. Distinct functions called:
{report['fc_distinct_functions_called']}.

{table(report['fc_shapes'], 'shape')}

{table(report['call_shapes'], 'most common call shapes')}
"""


def show(directory: str | Path, split: str = "train", count: int = 3) -> str:
    """A few rows of a split, rendered as a readable conversation."""
    lines = []
    with (Path(directory) / f"{split}.jsonl").open(encoding="utf-8") as f:
        for _, line in zip(range(count), f):
            row = json.loads(line)
            lines.append(f"=== {row['id']} ({row['world']}, {row['pattern']}, {len(json.loads(row['tools']))} tools)")
            for m in row["messages"]:
                calls = " ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in m["tool_calls"])
                lines.append(f"[{m['role']}] {m['content']} {calls}".rstrip())
    return "\n".join(lines)
