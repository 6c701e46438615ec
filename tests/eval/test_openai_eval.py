"""`chord-env eval` and `chord-env rollout` against an OpenAI-compatible server: a fake one on loopback
(a thread with http.server) that answers `/chat/completions` (the model known by name only),
`/completions` with vLLM's token-id extensions (the model with a tokenizer folder) and `/models`."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from chord_env.agents.chat_backend import reply_text
from chord_env.chat import ChatRenderer
from chord_env.cli import main as cli
from chord_env.envs.math_heldout import heldout_math_tasks
from chord_env.parsing import PARSERS
from chord_env.types import Message, ToolCall
import loopback

KEY = "sk-test-not-a-real-key"


class FakeOpenAI(loopback.Endpoint):
    """Answers chat requests with tools by calling the first tool (arguments {"x": 1}), math requests
    with the right answer for the first held-out problem and a wrong one otherwise, and token-id
    completions with `completion_ids`. Records every request's path, headers and body."""

    def __init__(self, completion_ids: list[int] | None = None):
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.completion_ids = completion_ids or []
        first = heldout_math_tasks(1)[0]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 4096}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, dict(self.headers), body))
                self._send(fake.chat(body, first) if self.path.endswith("/chat/completions") else fake.complete(body))

            def log_message(self, *args: Any) -> None:
                pass

        self.start(Handler)

    @staticmethod
    def chat(body: dict[str, Any], first: Any) -> dict[str, Any]:
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c0", "type": "function", "function": {"name": name, "arguments": '{"x": 1}'}}]}
        else:
            right = first.prompt in body["messages"][-1]["content"]
            message = {"role": "assistant", "content": f"So the answer is $\\boxed{{{first.answer if right else -12345}}}$."}
        choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(body["n"])]
        return {"id": "x", "object": "chat.completion", "choices": choices, "usage": {"prompt_tokens": 17, "completion_tokens": 5}}

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = self.completion_ids
        choices = [{"index": i, "text": "", "token_ids": ids, "finish_reason": "stop",
                    "logprobs": {"token_logprobs": [-0.5] * len(ids), "tokens": [f"token_id:{t}" for t in ids]}}
                   for i in range(body["n"])]
        return {"id": "x", "object": "text_completion", "choices": choices}


@pytest.fixture
def server(request):
    servers: list[FakeOpenAI] = []
    yield lambda ids=None: servers.append(FakeOpenAI(ids)) or servers[-1]
    for s in servers:
        s.close()


def read_cases(path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in open(path)]


def test_eval_through_chat_completions_writes_the_same_report(server, tmp_path, monkeypatch):
    fake = server()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "report"
    status = cli(["eval", "--backend", "openai", "--base-url", fake.url, "--model", "org/fake", "--suite", "bfcl-single,math",
                  "--limit", "1", "--math-problems", "2", "--out", str(out)])
    assert status == 0
    assert {p.name for p in out.iterdir()} >= {"report.md", "summary.json", "accuracy.png", "fake"}
    cases = read_cases(out / "fake" / "cases.jsonl")
    bfcl_cases, math_cases = [c for c in cases if c["suite"] == "bfcl-single"], [c for c in cases if c["suite"] == "math"]
    assert len(math_cases) == 1 and len(bfcl_cases) > 1  # --limit 1: one case per category
    # every request went to the chat endpoint with the key from the environment, greedy and seeded
    assert {path for path, _, _ in fake.requests} == {"/v1/chat/completions"}
    assert all(headers["Authorization"] == f"Bearer {KEY}" for _, headers, _ in fake.requests)
    assert all(body["model"] == "org/fake" and body["temperature"] == 0.0 and body["seed"] == 0 for _, _, body in fake.requests)
    with_tools = [body for _, _, body in fake.requests if "tools" in body]
    assert len(with_tools) == len(bfcl_cases) and all(t["type"] == "function" for b in with_tools for t in b["tools"])
    # structured tool calls became Hermes text that BFCL's scoring decoded back into the same call
    for case in bfcl_cases:
        assert case["outputs"][0].startswith("<tool_call>") and case["prompt_tokens"] == 17
        assert case["verdicts"][0]["calls"][0]["arguments"] == {"x": 1}
    assert math_cases[0]["verdicts"][0]["correct"] == (math_cases[0]["id"] == heldout_math_tasks(1)[0].id)
    summary = json.loads((out / "summary.json").read_text())
    assert "fake" in json.dumps(summary)
    assert KEY not in "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


def test_chat_eval_refuses_multi_turn_and_a_missing_key_variable(server, tmp_path, monkeypatch, capsys):
    fake = server()
    monkeypatch.delenv("MY_KEY", raising=False)
    args = ["eval", "--backend", "openai", "--base-url", fake.url, "--model", "fake", "--out", str(tmp_path / "r")]
    assert cli([*args, "--suite", "bfcl-multi-turn"]) == 1
    assert "--tokenizer" in capsys.readouterr().err
    assert cli([*args, "--api-key-env", "MY_KEY"]) == 1
    assert "MY_KEY is not set" in capsys.readouterr().err
    assert cli(["eval", "--backend", "openai", "--model", "fake", "--out", str(tmp_path / "r")]) == 1
    assert "--base-url" in capsys.readouterr().err
    assert fake.requests == []


@pytest.mark.parametrize("tool_format", ["hermes", "json", "pythonic"])
def test_reply_tool_calls_are_written_in_the_parsers_format(tool_format):
    message = {"content": "Calling.", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]}
    parsed = PARSERS[tool_format](reply_text(message, tool_format, "url"))
    assert parsed.calls == [ToolCall("add", {"a": 1, "b": 2})] and not parsed.error


def test_a_call_with_broken_arguments_stays_a_failed_call():
    message = {"content": None, "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": '{"a": 1,'}}]}
    parsed = PARSERS["hermes"](reply_text(message, "hermes", "url"))
    assert parsed.error and not parsed.calls


def test_eval_and_rollout_with_a_tokenizer_folder_send_our_token_ids(server, tmp_path, smollm2_cache, smollm2_tokenizer, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    renderer = ChatRenderer(smollm2_tokenizer)
    answer = smollm2_tokenizer("So the answer is 7.", add_special_tokens=False)["input_ids"] + renderer.stop_token_ids()[:1]
    fake = server(answer)
    common = ["--backend", "openai", "--base-url", fake.url, "--model", "fake", "--tokenizer", str(smollm2_cache)]
    assert cli(["eval", *common, "--suite", "math", "--math-problems", "2", "--out", str(tmp_path / "r")]) == 0
    cases = read_cases(tmp_path / "r" / "fake" / "cases.jsonl")
    assert [c["outputs"] for c in cases] == [["So the answer is 7."]] * 2
    assert all(path == "/v1/completions" and "Authorization" not in headers for path, headers, _ in fake.requests)
    sent = sorted(body["prompt"] for _, _, body in fake.requests)
    assert sent == sorted(renderer.encode([Message(**m) for m in c["prompt"]], []) for c in cases)

    fake.requests.clear()
    out = tmp_path / "rollouts.jsonl"
    assert cli(["rollout", *common, "--env", "chord/Calculator-v0", "--num-tasks", "2", "--group", "2", "--max-context", "1024", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in open(out)]
    prompts = [body["prompt"] for _, _, body in fake.requests]
    assert len(rows) == 4
    for row in rows:
        assert row["token_ids"][: row["prompt_length"]] in prompts
        sampled = [t for t, m in zip(row["token_ids"], row["loss_mask"]) if m]
        assert sampled[: len(answer)] == answer and set(lp for lp, m in zip(row["logprobs"], row["loss_mask"]) if m) == {-0.5}
