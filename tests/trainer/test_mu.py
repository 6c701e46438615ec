"""mu (trainer/mu.py): the schedules' values at and around every boundary, and the learned mu."""

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chord_env.trainer.mu import LearnedMu, MuSchedule, chord_mu, constant, cosine, linear

# (W, D, peak, valley) -> {step: mu}, worked by hand; cos(pi / 200) = 0.99987663, cos(pi / 20) = 0.98768834
CASES = {
    # CHORD-mu, math: W = 0 so there is no warmup (step W - 1 = -1 does not exist)
    (0, 200, 0.9, 0.05): {
        0: 0.9,
        1: 0.05 + 0.85 * 0.5 * (1 + 0.99987663),  # 0.89994757
        100: 0.475,
        199: 0.05 + 0.85 * 0.5 * (1 - 0.99987663),  # 0.05005243
        200: 0.05,
        201: 0.05,
    },
    # CHORD-phi (math and tool use): W = D = 0 is the constant valley
    (0, 0, 0.1, 0.1): {0: 0.1, 1: 0.1, 1000: 0.1},
    # CHORD-mu, tool use
    (0, 20, 0.6, 0.0): {
        0: 0.6,
        1: 0.6 * 0.5 * (1 + 0.98768834),  # 0.59630650
        10: 0.3,
        19: 0.6 * 0.5 * (1 - 0.98768834),  # 0.00369350
        20: 0.0,
        21: 0.0,
    },
    # with warmup (not in the reference table): starts at 0
    (10, 20, 0.8, 0.2): {
        0: 0.0,
        9: 0.72,
        10: 0.8,
        11: 0.2 + 0.6 * 0.5 * (1 + 0.98768834),
        20: 0.5,
        29: 0.2 + 0.6 * 0.5 * (1 - 0.98768834),
        30: 0.2,
        31: 0.2,
    },
    # warmup without decay jumps from the ramp to the valley
    (10, 0, 0.5, 0.1): {0: 0.0, 9: 0.45, 10: 0.1, 11: 0.1},
}


@pytest.mark.parametrize("setting", list(CASES), ids=str)
def test_chord_mu_at_boundaries(setting):
    W, D, peak, valley = setting
    schedule = MuSchedule(kind="chord", warmup_steps=W, decay_steps=D, peak=peak, valley=valley)
    for step, mu in CASES[setting].items():
        assert chord_mu(step, W, D, peak, valley) == pytest.approx(mu, abs=1e-7), step
        assert schedule(step) == pytest.approx(mu, abs=1e-7), step


def test_linear_and_cosine_endpoints():
    assert [linear(s, 0.9, 0.1, 10) for s in (0, 5, 10, 11)] == pytest.approx([0.9, 0.5, 0.1, 0.1])
    assert [cosine(s, 0.9, 0.1, 10) for s in (0, 5, 10, 11)] == pytest.approx([0.9, 0.5, 0.1, 0.1])
    assert linear(0, 0.9, 0.1, 0) == cosine(0, 0.9, 0.1, 0) == 0.1
    assert constant(7, 0.3) == 0.3


def test_mu_schedule_from_yaml():
    config = yaml.safe_load("{kind: chord, warmup_steps: 0, decay_steps: 200, peak: 0.9, valley: 0.05}")
    assert MuSchedule(**config)(100) == pytest.approx(0.475)
    assert MuSchedule(kind="linear", start=0.5, end=0.0, steps=4)(2) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: chord_mu(-1, 0, 200, 0.9, 0.05), "step"),
        (lambda: chord_mu(0, -1, 200, 0.9, 0.05), "warmup_steps"),
        (lambda: chord_mu(0, 0, 200, 1.5, 0.05), "peak"),
        (lambda: linear(0, 0.9, -0.1, 10), "end"),
        (lambda: cosine(0, 0.9, 0.1, -10), "steps"),
        (lambda: constant(0, 2.0), "value"),
        (lambda: MuSchedule(kind="exp", value=0.1), "unknown"),
        (lambda: MuSchedule(kind="chord", peak=0.9, valley=0.05), "needs"),
        (lambda: MuSchedule(kind="constant", value=0.1, peak=0.9), "does not take"),
        (lambda: MuSchedule(kind="constant", value=1.1), r"\[0, 1\]"),
    ],
)
def test_bad_parameters_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=50, deadline=None)
@given(
    step=st.integers(0, 500),
    W=st.integers(0, 50),
    D=st.integers(0, 300),
    peak=st.floats(0.0, 1.0),
    valley=st.floats(0.0, 1.0),
)
def test_chord_mu_stays_in_range(step, W, D, peak, valley):
    assert 0.0 <= chord_mu(step, W, D, peak, valley) <= max(peak, valley) + 1e-12


def test_sft_warmup_holds_pure_sft_then_follows_the_chord_cosine():
    schedule = MuSchedule(kind="sft-warmup", hold_steps=3, decay_steps=4, peak=0.6, valley=0.1)
    assert [schedule(s) for s in range(3)] == [1.0, 1.0, 1.0]
    assert [schedule(s) for s in (3, 5, 7, 50)] == pytest.approx([0.6, 0.35, 0.1, 0.1])


def test_learned_mu_step_moves_theta_towards_the_gradient_share_target():
    balance = LearnedMu(mu_init=0.1, target_share=0.5)
    opt = torch.optim.SGD(balance.parameters(), lr=0.25)
    theta_before = balance.theta.item()
    # g_rl = 1, g_sft = 0.1: SFT gets half the gradient at mu* = 10 / 11 (0.1 mu* = 1 - mu*)
    loss = balance.balance_loss(g_rl=1.0, g_sft=0.1)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert balance.theta.item() != theta_before
    for _ in range(30):
        opt.zero_grad()
        balance.balance_loss(g_rl=1.0, g_sft=0.1).backward()
        opt.step()
    assert balance().item() == pytest.approx(10 / 11, abs=1e-4)


def test_learned_mu_stays_inside_its_bounds():
    balance = LearnedMu(mu_init=0.1, mu_min=0.05, mu_max=0.9)
    opt = torch.optim.SGD(balance.parameters(), lr=0.25)
    for g_rl, g_sft, bound in [(1.0, 0.0, 0.9), (0.0, 1.0, 0.05)]:  # a zero gradient on one side
        for _ in range(40):
            opt.zero_grad()
            loss = balance.balance_loss(g_rl, g_sft)
            assert torch.isfinite(loss)
            loss.backward()
            opt.step()
        assert balance().item() == pytest.approx(bound, abs=1e-4)
    with pytest.raises(ValueError):
        LearnedMu(mu_init=0.0)
