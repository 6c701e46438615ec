"""Applications over the library: `chord-env demo` (the main job) and `chord-env compare` (methods at
equal budget). They use only the public functions of envs, agents and trainer."""
