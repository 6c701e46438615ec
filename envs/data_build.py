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
ids and their `arguments` as JSON objects, as transformers' chat templates and TRL take them; tool
results produced by executing the calls in a fresh world), `tools` (OpenAI tool specs with valid
JSON Schema), `tools_shown` (the same specs as the model was shown them: half the tasks spell types
the way BFCL and other benchmarks do, "dict", "float", "tuple"; the trainer renders these, so the
model learns the spellings it is evaluated on), `task` (the task as a JSON string, enough to rebuild
it and replay it in its env) and `reward`. Every world trace is replayed through its env while
building and must earn `MAX_REWARD`, or the build fails.

`README.md` is a dataset card whose `configs:` block names every split file and whose features
declare `arguments` and the tool specs as JSON, so `datasets.load_dataset(folder)` (datasets >= 4.7)
returns each split as itself with every row's objects exactly as written. Files written before
this format (arguments and `tools` as JSON strings, no `tools_shown`) still load as expert traces
(`chord_env.data_import`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
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
from chord_env.types import Message, ToolCall, ToolSpec

SPLITS = ("train", "validation", "held_out", "math_train", "math_validation", "fc_train", "fc_validation")
"""every split a data folder may hold, each in `<split>.jsonl`, in the dataset card's order"""


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
    """A message with every key present (one schema for all rows, as Arrow wants), arguments as objects."""
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls]
    return {"role": message.role, "content": message.content, "tool_calls": calls, "tool_call_id": message.tool_call_id,
            "name": message.name}


_JSON_SCHEMA_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


def _json_schema_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            out[key] = _JSON_SCHEMA_TYPES.get(value, value)
        elif key == "type" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = [_JSON_SCHEMA_TYPES.get(v, v) for v in value]
        else:
            out[key] = _json_schema_types(value)
    return out


def json_schema_spec(spec: ToolSpec) -> ToolSpec:
    """`spec` with BFCL's type spellings ("dict", "float", "tuple") written as JSON Schema's."""
    return ToolSpec(spec.name, spec.description, _json_schema_types(spec.parameters))


def tool_columns(shown: Sequence[ToolSpec]) -> dict[str, list[dict[str, Any]]]:
    """A row's `tools` (valid JSON Schema) and `tools_shown` (as the model saw them), as OpenAI specs."""
    return {"tools": [json_schema_spec(s).to_openai() for s in shown], "tools_shown": [s.to_openai() for s in shown]}


def world_row(task: Task, split: str, env: Any) -> dict[str, Any]:
    """Replay the task's expert through `env` and return its dataset row; raises if not full reward."""
    _, info = env.reset(options={"task": task})
    reward, done = 0.0, False
    for action in task.expert:
        _, reward, terminated, truncated, step_info = env.step(action)
        done = terminated or truncated
    if not done or abs(reward - MAX_REWARD) > 1e-9 or not step_info["success"]:
        raise RuntimeError(f"{task.id}: the expert trace earned {reward} (done={done}), not {MAX_REWARD}")
    return {"id": task.id, "world": task.info["world"], "pattern": task.info["pattern"], "split": split,
            "messages": [_message_row(m) for m in env.unwrapped.messages], **tool_columns(info["tools"]),
            "task": task_to_json(task), "reward": reward}


def math_row(task: Task, split: str) -> dict[str, Any]:
    messages = [Message("user", task.prompt), Message("assistant", task.expert[0])]
    return {"id": task.id, "world": task.info["world"], "pattern": "math", "split": split,
            "messages": [_message_row(m) for m in messages], **tool_columns([]), "task": task_to_json(task), "reward": 1.0}


def fc_row(task: Task, split: str, env: FunctionCallEnv) -> dict[str, Any]:
    """Replay a function-calling task's expert through `env` and return its row; raises unless solved."""
    env.reset(options={"task": task})
    _, reward, _, _, info = env.step(task.expert[0])
    if reward != 1.0 or not info["success"]:
        raise RuntimeError(f"{task.id}: the expert earned {reward} ({info})")
    calls = [ToolCall(c.name, c.arguments, id=f"call_{i}") for i, c in enumerate(task.answer)]
    messages = [Message("user", task.prompt), Message("assistant", "" if calls else task.expert[0], tool_calls=calls)]
    return {"id": task.id, "world": "function_catalog", "pattern": task.info["shape"], "split": split,
            "messages": [_message_row(m) for m in messages], **tool_columns(task.tools), "task": task_to_json(task), "reward": reward}


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
    write_card(out)
    return {"rows": {s: len(r) for s, r in rows.items()}, "shapes": dict(Counter(r["pattern"] for r in rows["fc_train"]).most_common())}


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


_STRING = {"dtype": "string"}
FEATURES = [
    {"name": "id", **_STRING}, {"name": "world", **_STRING}, {"name": "pattern", **_STRING}, {"name": "split", **_STRING},
    {"name": "messages", "list": [
        {"name": "role", **_STRING}, {"name": "content", **_STRING},
        {"name": "tool_calls", "list": [{"name": "id", **_STRING}, {"name": "type", **_STRING}, {"name": "function", "struct": [
            {"name": "name", **_STRING}, {"name": "arguments", "dtype": "json"}]}]},
        {"name": "tool_call_id", **_STRING}, {"name": "name", **_STRING}]},
    {"name": "tools", "list": "json"}, {"name": "tools_shown", "list": "json"},
    {"name": "task", **_STRING}, {"name": "reward", "dtype": "float64"},
]
"""the rows' features as a dataset card states them (`datasets` YAML): arguments and tool specs are JSON,
which differ from row to row (as Arrow structs, each row would gain every other row's keys as nulls)"""

FC_CARD = """# chord-env function-calling data

Single-turn requests over chord-env's own function catalogue (`fc_train`, `fc_validation`), written
by `chord_env.envs.data_build.build_function_rows`; `chord-env data build` describes a full build.
"""


def write_card(out: Path, body: str | None = None) -> None:
    """Write `out/README.md`: a YAML header whose `configs:` block names each `<split>.jsonl` in `out` as
    its split and whose features declare the JSON fields, then `body` (None: the card's current body,
    or `FC_CARD` if there is none)."""
    card = out / "README.md"
    if body is None:
        old = card.read_text(encoding="utf-8") if card.is_file() else ""
        body = old.split("\n---\n", 1)[1].lstrip("\n") if old.startswith("---\n") and "\n---\n" in old else (old or FC_CARD)
    files = [{"split": s, "path": f"{s}.jsonl"} for s in SPLITS if (out / f"{s}.jsonl").is_file()]
    header = {"configs": [{"config_name": "default", "data_files": files}], "dataset_info": {"features": FEATURES}}
    card.write_text("---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body, encoding="utf-8")


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
    write_card(out, dataset_card(report))
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
    """The card's body (Markdown): how the data was built, rows per split and the diversity report."""
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
            tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]  # a string in old files
            lines.append(f"=== {row['id']} ({row['world']}, {row['pattern']}, {len(tools)} tools)")
            for m in row["messages"]:
                calls = " ".join(f"{c['function']['name']}({_arguments_text(c['function']['arguments'])})" for c in m["tool_calls"])
                lines.append(f"[{m['role']}] {m['content']} {calls}".rstrip())
    return "\n".join(lines)


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
