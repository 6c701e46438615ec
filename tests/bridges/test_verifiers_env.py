"""The verifiers bridge against verifiers 0.1.10 itself: `load_environment` gives a real
`vf.MultiTurnEnv`, and verifiers' own `evaluate_sync` plays episodes against fake OpenAI-compatible
servers on loopback that script the expert, with tool calls returned structured (as a server that
parses them does) or as Hermes text in the content. The rewards are the env's, and the env's tool
results reach the model with the ids of its calls.

verifiers runs in a child process started outside the checkout: verifiers imports openai-agents'
top-level `agents` module, which the checkout's own `agents/` folder shadows when the repository
root is on `sys.path` (as `python -m pytest` puts it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

import loopback

QUESTION = re.compile(r"What is (.+)\? Use the calculator\.")


class ScriptedExpert(loopback.Endpoint):
    """Plays chord/Calculator-v0's expert: calls `calculator` on the question's expression, then
    states the tool's result. Records every request body."""

    def __init__(self, structured: bool):
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                data = json.dumps(fake.reply(body, structured)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.start(Handler)

    @staticmethod
    def reply(body: dict[str, Any], structured: bool) -> dict[str, Any]:
        messages = body["messages"]
        if messages[-1]["role"] == "tool":
            message = {"role": "assistant", "content": f"The answer is {messages[-1]['content']}."}
        else:
            expression = QUESTION.search(messages[-1]["content"]).group(1)
            arguments = json.dumps({"expression": expression})
            if structured:
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_abc", "type": "function", "function": {"name": "calculator", "arguments": arguments}}]}
            else:
                message = {"role": "assistant",
                           "content": f'<tool_call>\n{{"name": "calculator", "arguments": {arguments}}}\n</tool_call>'}
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


CHILD = """
import json, sys
import verifiers as vf
from openai import AsyncOpenAI
from chord_env.bridges.verifiers_env import load_environment

urls = json.loads(sys.argv[1])
env = load_environment("chord/Calculator-v0", num_examples=2, seed=11)
row = env.get_dataset()[0]
out = {"multi_turn": isinstance(env, vf.MultiTurnEnv), "rows": len(env.get_dataset()), "info": row["info"],
       "question": row["prompt"][-1]["content"], "rewards": {}}
for name, url in urls.items():
    results = env.evaluate_sync(client=AsyncOpenAI(base_url=url, api_key="not-a-key"), model="fake", num_examples=2)
    out["rewards"][name] = [o["reward"] for o in results["outputs"]]
print(json.dumps(out))
"""


def test_verifiers_evaluate_plays_the_env_and_scores_with_its_reward(tmp_path):
    if subprocess.run([sys.executable, "-c", "import verifiers"], cwd=tmp_path, capture_output=True).returncode:
        pytest.skip("verifiers is in the bridges extra: pip install -e '.[bridges]'")
    servers = {"structured": ScriptedExpert(structured=True), "text": ScriptedExpert(structured=False)}
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    try:
        urls = json.dumps({name: server.url for name, server in servers.items()})
        child = subprocess.run([sys.executable, str(script), urls], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=240)
    finally:
        for server in servers.values():
            server.close()
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["multi_turn"] and out["rows"] == 2
    info = json.loads(out["info"]) if isinstance(out["info"], str) else out["info"]
    assert info["seed"] == 11 and [t["function"]["name"] for t in info["oai_tools"]] == ["calculator"]
    assert QUESTION.search(out["question"])
    assert out["rewards"] == {"structured": pytest.approx([1.1, 1.1]), "text": pytest.approx([1.1, 1.1])}
    for server in servers.values():  # two turns per episode: the call, then the answer
        assert len(server.requests) == 4
        assert all(r["tools"][0]["function"]["name"] == "calculator" for r in server.requests)
    replies = [r["messages"][-1] for r in servers["structured"].requests if r["messages"][-1]["role"] == "tool"]
    assert [m["tool_call_id"] for m in replies] == ["call_abc", "call_abc"]  # the env answers the model's calls
