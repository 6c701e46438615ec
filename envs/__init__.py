"""Gymnasium environments for LLM agents: multi-turn tool use, math, single-turn function calling."""
