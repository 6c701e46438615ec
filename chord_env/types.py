"""The data every part of chord-env passes around: messages, tool calls, tool specs, turns, trajectories.

Messages mirror the OpenAI chat format (`role`, `content`, `tool_calls`, `tool_call_id`, `name`)
so they convert to and from it losslessly; tool-call arguments are kept as a parsed dict (the
OpenAI wire format carries them as a JSON string, `to_openai` / `from_openai` convert).

A `Trajectory` is what the rollout runner produces and the trainer consumes: the full token ids of
one episode, a loss mask that is 1 exactly on the tokens the model sampled, the behaviour logprob of
each of those tokens, the reward with its breakdown, and one `Turn` per model turn. It round-trips
through JSON lines without loss (`write_jsonl` / `read_jsonl`; floats are written with `repr`
precision by the json module, so they come back bit for bit). Text that is not valid Unicode (a
lone surrogate such as "\ud800", which UTF-8 cannot encode) is repaired with `clean_text` as it is
written; `map_strings` applies such a function to every string in a structure.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, TypeVar

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
T = TypeVar("T")


def clean_text(text: str) -> str:
    """`text` as valid Unicode: a surrogate pair becomes the character it encodes, a lone surrogate
    becomes U+FFFD; valid text comes back unchanged (the same object)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def map_strings(value: T, fn: Callable[[str], str]) -> T:
    """`value` with `fn` applied to every string in it: through lists, tuples, dict keys and values,
    and the fields of dataclasses (messages, tool calls, tool specs, turns); anything else as it is."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(map_strings(v, fn) for v in value)
    if isinstance(value, dict):
        return {map_strings(k, fn): map_strings(v, fn) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: map_strings(getattr(value, f.name), fn) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


@dataclass
class ToolCall:
    """One function call the model asked for."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> ToolCall:
        """Accepts the OpenAI shape (`{"function": {"name", "arguments": str}}`) or the flat one."""
        fn = data.get("function", data)
        args = fn.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        if not isinstance(args, dict):
            raise ValueError(f"tool call arguments must be an object, got {type(args).__name__}")
        return cls(name=fn["name"], arguments=args, id=data.get("id"))


@dataclass
class Message:
    """One chat message in the OpenAI format."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> Message:
        role = data.get("role")
        if role not in ROLES:
            raise ValueError(f"message role must be one of {ROLES}, got {role!r}")
        content = data.get("content")
        return cls(
            role=role,
            content="" if content is None else str(content),
            tool_calls=[ToolCall.from_openai(c) for c in data.get("tool_calls") or []],
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@dataclass
class ToolSpec:
    """A tool as the model sees it: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> ToolSpec:
        fn = data.get("function", data)
        return cls(
            name=fn["name"],
            description=fn.get("description", ""),
            parameters=fn.get("parameters") or {"type": "object", "properties": {}},
        )


@dataclass
class Turn:
    """One model turn inside a trajectory.

    `token_ids[start:end]` are the tokens the model sampled in this turn; the environment's reply
    (tool results, the user's next message) follows them and carries no loss.
    """

    start: int
    end: int
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trajectory:
    """One episode as token ids, ready for training.

    Invariants: `len(token_ids) == len(loss_mask) == len(logprobs)`; `loss_mask[i] == 1` iff token i
    was sampled by the model; `logprobs[i]` is its behaviour logprob (0.0 where the mask is 0);
    `prompt_length` tokens of prompt come first.
    """

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    prompt_length: int
    reward: float = 0.0
    success: bool = False
    """The env's `info["success"]` on the final step: the task is solved (False if the runner cut it)."""
    reward_breakdown: dict[str, float] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    task_id: str = ""
    group_id: str = ""
    truncation: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(
                f"token_ids, loss_mask and logprobs must have one entry per token: "
                f"{n}, {len(self.loss_mask)}, {len(self.logprobs)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        data["turns"] = [Turn(**t) for t in data.get("turns", [])]
        data["messages"] = [_message_from_dict(m) for m in data.get("messages", [])]
        return cls(**data)


def _message_from_dict(data: dict[str, Any]) -> Message:
    calls = [ToolCall(**c) for c in data.get("tool_calls", [])]
    return Message(**{**data, "tool_calls": calls})


def write_jsonl(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write trajectories as JSON lines (to a temporary file renamed at the end); returns the count.

    Lines are UTF-8; a trajectory holding text UTF-8 cannot encode (a lone surrogate) is written
    with that text repaired by `clean_text`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("wb") as f:
        for traj in trajectories:
            data = traj.to_dict()
            try:
                line = json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                line = json.dumps(map_strings(data, clean_text), ensure_ascii=False).encode("utf-8")
            f.write(line + b"\n")
            count += 1
    tmp.replace(path)
    return count


def read_jsonl(path: str | Path) -> Iterator[Trajectory]:
    """Read trajectories written by `write_jsonl`; a bad line raises naming the file and line."""
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Trajectory.from_dict(json.loads(line))
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"{path}:{lineno}: not a trajectory: {e}") from e
