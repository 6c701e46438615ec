"""Expert traces are drawn as seeded permutations per epoch, by quota per file, as a pure function of
(seed, step): every row once per epoch, the same draws after a resume."""

from collections import Counter

from chord_env.trainer.batching import Sequence
from chord_env.trainer.expert import expert_batch, quotas, stream_index


def pool(tag: int, n: int) -> list[Sequence]:
    return [Sequence([tag, i], [0, 1], [0.0, 0.0]) for i in range(n)]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    n = 13
    epochs = [[stream_index(e * n + k, n, seed=5) for k in range(n)] for e in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert epochs[0] != list(range(n)) and epochs[0] != epochs[1]
    assert [stream_index(k, n, seed=6) for k in range(n)] != epochs[0]


def test_batches_are_a_pure_function_of_the_step():
    pools, counts = [pool(0, 10), pool(1, 7)], [3, 1]
    straight = [expert_batch(pools, counts, step, seed=1) for step in range(8)]
    resumed = [expert_batch(pools, counts, step, seed=1) for step in range(4, 8)]
    assert straight[4:] == resumed
    seen = Counter(s.token_ids[1] for batch in straight[:3] for s in batch if s.token_ids[0] == 0)
    assert len(seen) == 9 and max(seen.values()) == 1  # 9 draws of a 10-row epoch: no repeats
    assert all(sum(s.token_ids[0] == 1 for s in batch) == 1 for batch in straight)


def test_quotas_follow_the_weights():
    assert quotas([1.0], 8) == [8]
    assert quotas([0.75, 0.25], 8) == [6, 2]
    assert quotas([0.8, 0.2], 8) == [6, 2]  # 6.4 / 1.6: the larger remainder wins the last slot
    assert sum(quotas([0.5, 0.3, 0.2], 7)) == 7
