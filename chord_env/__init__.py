"""chord-env: Gymnasium tool-use environments, on-policy rollouts and CHORD training for LLM agents."""
