"""A test env where reward is reachable from a random policy: one-token replies, reward 1 if the
reply's first letter is a vowel (about a fifth of random replies). Used by the learning and resume tests."""

import chord_env
from chord_env.envs import Task
from chord_env.envs.base import ChatEnv

WORDS = ("sea", "tree", "river", "stone", "cloud", "bird", "road", "lamp", "bread", "song", "wind", "snow")


def starts_with_vowel(text: str) -> float:
    letters = [c for c in text.lower() if c.isalpha()]
    return float(bool(letters) and letters[0] in "aeiou")


class VowelEnv(ChatEnv):
    """One turn: say something; reward 1 if the reply's first letter is a vowel."""

    def __init__(self):
        super().__init__(tasks=lambda rng: Task(prompt=f"Say something about the {WORDS[int(rng.integers(len(WORDS)))]}."))

    def step(self, action):
        self._begin_step(action)
        self._done = True
        reward = starts_with_vowel(action)
        return [], reward, True, False, {"reward_breakdown": {"vowels": reward}}


chord_env.register("Vowels-v0", f"{__name__}:VowelEnv")
ENV_ID = f"{__name__}:chord/Vowels-v0"  # gymnasium imports this module first, so subprocesses find the env
