"""Expert traces for the SFT term: read and checked row by row, rendered with the rollouts' chat template.

A trace is a JSON-lines row `{"messages": [OpenAI-format messages], "tools": [OpenAI tool specs]}`,
arguments and tool lists as JSON objects or (older files) JSON strings. A row with `tools_shown`
(`chord-env data build` writes it: the specs in the spelling its tasks show the model, while `tools`
holds them in valid JSON Schema) is rendered with `tools_shown`, so the model learns the spelling it
is shown in rollouts and evaluation.
Rows are read line by line and checked by the importer (`chord_env.data_import`, format "openai"),
not through Arrow, which would merge dict keys across rows (one row's arguments gaining other rows'
keys as null); a file with any bad row is refused, every bad row named by its line and reason.
Rendering uses the same `ChatRenderer` as the rollouts,
and the same split between prompt and response: a rollout's prompt ends with the generation prompt
(`<|im_start|>assistant\\n`) and the model samples the rest of the turn through `<|im_end|>`; here
every assistant turn is tokenized the same way, and exactly those sampled-equivalent tokens get loss
mask 1. System, user and tool messages, and the generation prompts, get 0.

Drawing. Each step takes E traces. With several files mixed by weight, each file gets a fixed quota
of the E slots (`quotas`: largest remainder of E * weight), and each file is read as a stream of
epochs, every epoch a fresh permutation seeded by (seed, epoch) (`expert_batch`). Trace k of a
file's stream is a pure function of (seed, k), so a resumed run draws exactly what an uninterrupted
one would, and a short run sees every world or shape of a file, not its first rows.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from chord_env.chat import ChatRenderer
from chord_env.data_import import import_file
from chord_env.trainer.batching import Sequence
from chord_env.types import Message, ToolSpec

SHOWN_ERRORS = 10
"""bad rows named in the exception's message; every one is logged"""

log = logging.getLogger(__name__)


def render_expert(renderer: ChatRenderer, messages: list[Message], tools: list[ToolSpec]) -> Sequence:
    """Token ids of a whole expert conversation with loss mask 1 on the assistant turns' sampled part.
    Control tokens come only from the template, as in the rollouts: message and tool text that spells
    a special token is tokenized as text (`ChatRenderer.text_ids`)."""
    ids: list[int] = []
    mask: list[int] = []
    for k, message in enumerate(messages):
        history = messages[:k]
        before = renderer.render_text(history, tools, False) if history else ""
        after = renderer.render_text(messages[: k + 1], tools, False)
        if not after.startswith(before):
            raise ValueError("the chat template is not incremental; cannot render expert traces")
        blanked = renderer.blanked_rendering(messages[: k + 1], tools, False, after)

        def add(start: int, end: int, loss: int) -> None:
            piece = renderer.text_ids(after[start:end], None if blanked is None else blanked[start:end])
            ids.extend(piece)
            mask.extend([loss] * len(piece))

        if message.role != "assistant":
            add(len(before), len(after), 0)
            continue
        header = len(renderer.render_text(history, tools, True))
        end = after.rfind(renderer.end_of_turn)
        if not after.startswith(renderer.render_text(history, tools, True)) or end < header:
            raise ValueError(f"assistant turn {k} does not render as generation prompt + response + end of turn")
        end += len(renderer.end_of_turn)
        add(len(before), header, 0)
        add(header, end, 1)
        add(end, len(after), 0)
    return Sequence(token_ids=ids, loss_mask=mask, logprobs=[0.0] * len(ids))


def load_expert(path: str | Path, renderer: ChatRenderer) -> list[Sequence]:
    """Every trace of a JSON-lines file, checked and rendered. Raises one ValueError naming the file if
    it cannot be read, has no rows, or has bad rows: each bad row (its line number and reason) is
    logged, and the first `SHOWN_ERRORS` are named in the message."""
    try:
        report = import_file(path, "openai")
    except OSError as e:
        raise ValueError(f"expert traces {path}: cannot read the file: {e}") from None
    errors = list(report.errors)
    out = []
    for row in report.rows:
        try:
            seq = render_expert(renderer, row.messages, row.training_tools)
        except Exception as e:  # the tokenizer and template raise their own types; each is this row's
            errors.append((row.number, f"cannot render it: {type(e).__name__}: {e}"))
            continue
        if sum(seq.loss_mask) == 0:
            errors.append((row.number, "the trace has no assistant turn to learn from"))
            continue
        out.append(seq)
    if errors:
        errors.sort()
        for number, reason in errors:
            log.error("expert traces %s: row %d: %s", path, number, reason)
        shown = "; ".join(f"row {n}: {reason}" for n, reason in errors[:SHOWN_ERRORS])
        more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise ValueError(f"expert traces {path}: {len(errors)} of {report.read} rows are bad (row N is line N): {shown}{more}")
    if not out:
        raise ValueError(f"expert traces {path}: no rows")
    return out


def quotas(weights: list[float], per_step: int) -> list[int]:
    """Split `per_step` slots among sources in proportion to `weights` (largest remainder method)."""
    total = sum(weights)
    exact = [per_step * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])[: per_step - sum(counts)]:
        counts[i] += 1
    return counts


def stream_index(k: int, n: int, seed: int) -> int:
    """The row of position k in a stream of epochs over n rows, each epoch a permutation seeded by
    (seed, epoch)."""
    epoch, offset = divmod(k, n)
    return int(np.random.default_rng([seed, epoch]).permutation(n)[offset])


def expert_batch(pools: list[list[Sequence]], counts: list[int], step: int, seed: int) -> list[Sequence]:
    """The expert traces of optimizer step `step`: counts[i] from pool i, at stream positions
    step * counts[i] ... step * counts[i] + counts[i] - 1 of pool i's stream."""
    batch = []
    for i, (pool, count) in enumerate(zip(pools, counts)):
        batch += [pool[stream_index(step * count + j, len(pool), seed + i)] for j in range(count)]
    return batch
