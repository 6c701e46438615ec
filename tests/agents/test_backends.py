"""The Backend contract, the same tests for the vLLM engine and for transformers `generate`, on the
tiny model: ids, logprobs and finish reasons of the right lengths, stop tokens kept, `max_tokens` ->
"length", and behaviour logprobs equal to transformers' on the same weights (fp32, <= 1e-3)."""

from __future__ import annotations

import math

import pytest

from chord_env.agents.backend import SamplingParams
from chord_env.agents.weight_sync import default_probes, logprob_parity, reference_logprobs

PROMPTS = [[1, 100, 200, 300], [1, 4000, 5000, 6000, 7000, 8000], [9, 10]]


@pytest.fixture(scope="module")
def tiny_hf(tiny_model):
    from chord_env.agents.hf_backend import HFBackend

    return HFBackend(tiny_model, seed=0, max_model_len=1024)


@pytest.fixture(params=["vllm", "hf"])
def backend(request):
    return request.getfixturevalue({"vllm": "tiny_vllm", "hf": "tiny_hf"}[request.param])


def test_shapes_n_and_length(backend):
    out = backend.generate(PROMPTS, SamplingParams(temperature=1.0, max_tokens=6, n=3))
    assert len(out) == len(PROMPTS)
    for completions in out:
        assert len(completions) == 3
        for c in completions:
            assert len(c.token_ids) == len(c.logprobs) and 1 <= len(c.token_ids) <= 6
            assert all(isinstance(t, int) for t in c.token_ids)
            assert all(lp <= 0 and math.isfinite(lp) for lp in c.logprobs)
            assert c.finish_reason == ("length" if len(c.token_ids) == 6 else "stop")


def test_stop_token_is_kept_and_ends_the_completion(backend):
    (greedy,) = backend.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8))[0]
    assert greedy.finish_reason == "length" and len(greedy.token_ids) == 8
    stop = greedy.token_ids[3]
    (stopped,) = backend.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[stop]))[0]
    cut = greedy.token_ids.index(stop) + 1
    assert stopped.token_ids == greedy.token_ids[:cut] and stopped.token_ids[-1] == stop
    assert stopped.finish_reason == "stop"
    assert stopped.logprobs == pytest.approx(greedy.logprobs[:cut], abs=1e-5)


def test_prompt_that_does_not_fit_gets_an_empty_length_completion(backend):
    out = backend.generate([[5] * 1024, PROMPTS[0]], SamplingParams(max_tokens=3, seed=7))
    assert out[0][0].token_ids == [] and out[0][0].finish_reason == "length"
    assert len(out[1][0].token_ids) == 3


def test_logprobs_match_transformers(backend, tiny_model):
    assert logprob_parity(backend, tiny_model) <= 1e-3


def test_temperature_and_top_p_logprobs_are_the_sampling_distribution(backend, tiny_model):
    import torch

    prompt = default_probes(tiny_model.config.vocab_size, lengths=(20,))[0]
    (c,) = backend.generate([prompt], SamplingParams(temperature=0.7, max_tokens=10))[0]
    assert max(map(abs, (a - b for a, b in zip(c.logprobs, reference_logprobs(tiny_model, prompt, c.token_ids, 0.7))))) <= 1e-3
    (c,) = backend.generate([prompt], SamplingParams(temperature=1.0, top_p=0.5, max_tokens=4))[0]
    full = reference_logprobs(tiny_model, prompt, c.token_ids)
    assert all(got > want for got, want in zip(c.logprobs, full))  # renormalised over the nucleus
    assert torch.tensor(c.logprobs).isfinite().all()


def test_hf_backend_is_reproducible_with_a_seed(tiny_hf):
    params = SamplingParams(temperature=1.0, max_tokens=5, n=2, seed=11)
    assert tiny_hf.generate(PROMPTS, params) == tiny_hf.generate(PROMPTS, params)


def test_ignore_eos_samples_past_the_end_of_sequence(tiny_model):
    from chord_env.agents.hf_backend import HFBackend

    hf = HFBackend(tiny_model, seed=0, max_model_len=1024)
    (greedy,) = hf.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8))[0]
    eos = greedy.token_ids[2]
    hf.eos_ids = [eos]  # pretend a greedy token is the end of sequence
    (ended,) = hf.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8))[0]
    assert ended.token_ids == greedy.token_ids[: greedy.token_ids.index(eos) + 1] and ended.finish_reason == "stop"
    (past,) = hf.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
    assert past.token_ids == greedy.token_ids and past.finish_reason == "length"


def test_the_parity_probe_never_compares_an_empty_completion(tiny_model):
    """A trained chat model may end its turn at once on a probe; the probe must still compare tokens."""
    from chord_env.agents.backend import Completion

    class StaleEngineThatEndsAtOnce:  # its logprobs are 0.5 off; without ignore_eos it samples nothing
        def generate(self, prompts, params):
            ids = [7] * (params.max_tokens if params.ignore_eos else 0)
            return [[Completion(ids, [lp - 0.5 for lp in reference_logprobs(tiny_model, p, ids)], "length")] for p in prompts]

    assert logprob_parity(StaleEngineThatEndsAtOnce(), tiny_model) == pytest.approx(0.5, abs=1e-4)
