"""Monte Carlo dropout and calibration (tinygrad_cnn.uncertainty) against hand-computed values,
scipy's entropy and a loop-per-bin ECE."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn import uncertainty as U

LOG2 = math.log(2.0)


# ------------------------------------------------------------------------------ entropy
def test_entropy_by_hand():
    assert U.entropy([1.0, 0.0, 0.0]) == 0.0  # 0 log 0 = 0: no NaN
    assert U.entropy([0.5, 0.5]) == pytest.approx(LOG2)
    assert U.entropy(np.full(10, 0.1)) == pytest.approx(math.log(10))
    # -(0.7 log 0.7 + 0.2 log 0.2 + 0.1 log 0.1) = 0.801819...
    assert U.entropy([0.7, 0.2, 0.1]) == pytest.approx(0.8018185525433372)
    np.testing.assert_allclose(U.entropy([[0.5, 0.5], [1.0, 0.0]]), [LOG2, 0.0])


def test_mc_summaries_by_hand():
    # two passes that disagree completely: total uncertainty log 2, each pass sure -> all epistemic
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(U.predictive_mean(disagree), [[0.5, 0.5]])
    np.testing.assert_allclose(U.predictive_entropy(disagree), [LOG2])
    np.testing.assert_allclose(U.expected_entropy(disagree), [0.0])
    np.testing.assert_allclose(U.mutual_information(disagree), [LOG2])
    # two passes that agree on "don't know": all aleatoric, no mutual information
    agree = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    np.testing.assert_allclose(U.expected_entropy(agree), [LOG2])
    np.testing.assert_allclose(U.mutual_information(agree), [0.0], atol=1e-15)
    # p1 = (0.9, 0.1), p2 = (0.5, 0.5): mean (0.7, 0.3)
    mixed = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])
    h_mean = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    h_each = (-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) + LOG2) / 2
    np.testing.assert_allclose(U.predictive_entropy(mixed), [h_mean])
    np.testing.assert_allclose(U.expected_entropy(mixed), [h_each])
    np.testing.assert_allclose(U.mutual_information(mixed), [h_mean - h_each])


@st.composite
def passes(draw):
    t, n, c = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.3), size=(t, n))
    if draw(st.booleans()):  # exact zeros: the 0 log 0 = 0 rule
        p = np.where(p < 0.05, 0.0, p)
        p = np.where(p.sum(-1, keepdims=True) == 0, 1.0 / c, p)
        p /= p.sum(-1, keepdims=True)
    return p


@given(passes())
def test_entropy_and_mutual_information_properties(p):
    from scipy.stats import entropy as scipy_entropy

    np.testing.assert_allclose(U.entropy(p), scipy_entropy(p, axis=-1), rtol=1e-10, atol=1e-12)
    total, aleatoric, mi = U.predictive_entropy(p), U.expected_entropy(p), U.mutual_information(p)
    assert np.all(mi >= 0) and np.all(total <= math.log(p.shape[-1]) + 1e-12)
    np.testing.assert_allclose(mi, np.maximum(total - aleatoric, 0), atol=1e-12)
    assert np.all(total >= aleatoric - 1e-12), "entropy is concave: H[mean] >= mean H"
    same = np.repeat(p[:1], 3, axis=0)  # passes that all agree carry no mutual information
    np.testing.assert_allclose(U.mutual_information(same), 0.0, atol=1e-12)


@pytest.mark.parametrize("bad, message", [
    ([0.5, 0.6], "sum to 1"),
    ([1.2, -0.2], "non-negative"),
    ([np.nan, 1.0], "finite"),
])
def test_entropy_refuses_non_probabilities(bad, message):
    with pytest.raises(ValueError, match=message):
        U.entropy(bad)


def test_mc_summaries_need_passes_axis():
    with pytest.raises(ValueError, match=r"\(T, N, C\)"):
        U.predictive_entropy(np.full((4, 3), 1 / 3))


# --------------------------------------------------------------------------- calibration
def test_ece_by_hand():
    probs = np.array([
        [0.90, 0.05, 0.05],  # confidence 0.9, right   -> bin (0.8, 0.9]
        [0.90, 0.05, 0.05],  # confidence 0.9, wrong   -> bin (0.8, 0.9]
        [0.65, 0.35, 0.00],  # confidence 0.65, right  -> bin (0.6, 0.7]
        [0.38, 0.62, 0.00],  # confidence 0.62, right  -> bin (0.6, 0.7]
        [0.40, 0.30, 0.30],  # confidence 0.4, wrong   -> bin (0.3, 0.4]
    ])
    labels = np.array([0, 1, 0, 1, 2])
    # bins: (0.8, 0.9] acc 0.5 conf 0.9; (0.6, 0.7] acc 1 conf 0.635; (0.3, 0.4] acc 0 conf 0.4
    # ECE = 2/5 * 0.4 + 2/5 * 0.365 + 1/5 * 0.4 = 0.386; MCE = 0.4
    diagram = U.reliability_diagram(probs, labels, n_bins=10)
    assert diagram.ece == pytest.approx(0.386)
    assert diagram.mce == pytest.approx(0.4)
    assert U.expected_calibration_error(probs, labels) == pytest.approx(0.386)
    np.testing.assert_array_equal(diagram.counts, [0, 0, 0, 1, 0, 0, 2, 0, 2, 0])
    np.testing.assert_allclose(diagram.accuracy[[3, 6, 8]], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(diagram.confidence[[3, 6, 8]], [0.4, 0.635, 0.9])
    np.testing.assert_allclose(diagram.gaps[[3, 6, 8]], [-0.4, 0.365, -0.4])
    assert np.isnan(diagram.accuracy[0]) and np.isnan(diagram.confidence[9])
    np.testing.assert_allclose(diagram.bin_edges, np.linspace(0, 1, 11))
    # one bin: |accuracy - mean confidence| = |3/5 - 0.694|
    assert U.expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(0.094)


def test_bins_are_closed_on_the_right():
    # confidence exactly 0.5 belongs to (0.4, 0.5] (not (0.5, 0.6]), confidence 1 to the last bin
    probs = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.75, 0.25, 0.0]])
    diagram = U.reliability_diagram(probs, np.array([0, 0, 0]), n_bins=10)
    np.testing.assert_array_equal(np.nonzero(diagram.counts)[0], [4, 7, 9])
    quarters = U.reliability_diagram(probs, np.array([0, 0, 0]), n_bins=4)  # (0.5, 0.75] holds 0.75
    np.testing.assert_array_equal(quarters.counts, [0, 1, 1, 1])


def test_calibrated_predictions_have_zero_ece():
    # 10 predictions at confidence 0.8 of which 8 are right, 4 at 0.5 of which 2 are right
    probs = np.array([[0.8, 0.2]] * 10 + [[0.5, 0.5]] * 4)
    labels = np.array([0] * 8 + [1] * 2 + [0, 0, 1, 1])
    assert U.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def _ece_loops(probs, labels, n_bins):
    """The definition, one bin at a time: the oracle."""
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for m in range(n_bins):
        members = []
        for p, y in zip(probs, labels):
            c = p.max()
            if edges[m] < c <= edges[m + 1] or (m == 0 and c == 0):
                members.append((c, float(np.argmax(p) == y)))
        if members:
            conf = sum(c for c, _ in members) / len(members)
            acc = sum(a for _, a in members) / len(members)
            ece += len(members) / len(probs) * abs(acc - conf)
    return ece


@given(st.integers(1, 40), st.integers(2, 6), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_ece_matches_the_definition(n, c, n_bins, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.5), size=n)
    labels = rng.integers(0, c, size=n)
    diagram = U.reliability_diagram(probs, labels, n_bins)
    assert diagram.ece == pytest.approx(_ece_loops(probs, labels, n_bins), abs=1e-12)
    assert diagram.counts.sum() == n and 0 <= diagram.ece <= diagram.mce + 1e-15 <= 1 + 1e-15


@pytest.mark.parametrize("labels, n_bins, message", [
    (np.array([0.0, 1.0]), 10, "integer class indices"),
    (np.array([0, 3]), 10, r"in \[0, 2\)"),
    (np.array([0]), 10, "2 integer"),
    (np.array([0, 1]), 0, "n_bins must be a positive int"),
])
def test_calibration_argument_errors(labels, n_bins, message):
    with pytest.raises(ValueError, match=message):
        U.reliability_diagram(np.array([[0.6, 0.4], [0.3, 0.7]]), labels, n_bins)


# ------------------------------------------------------------------- Monte Carlo dropout
def _net(p: float) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(p), nn.Linear(8, 3))


def _with_running_statistics(model: nn.Module) -> nn.Module:
    """Give the batch-norm layer running statistics far from any batch's own."""
    bn = model[1]
    bn.running_mean.data[...] = np.linspace(-1, 1, 8)
    bn.running_var.data[...] = np.linspace(0.5, 3, 8)
    return model


def test_mc_dropout_keeps_batch_norm_in_eval_mode_and_restores_flags():
    tc.manual_seed(0)
    model = _with_running_statistics(_net(0.5))
    model.train()
    model[4].eval()  # a mixed state, which must come back exactly
    before = {m: m.training for m in model.modules()}
    running = model[1].running_mean.numpy().copy()
    with U.mc_dropout(model):
        assert not model.training and not model[1].training and model[3].training
        x = Tensor(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
        a, b = model(x).numpy(), model(x).numpy()
    assert not np.allclose(a, b), "dropout must stay on: two passes differ"
    np.testing.assert_array_equal(model[1].running_mean.numpy(), running)
    assert model[1].num_batches_tracked.item() == 0, "batch norm must not count MC passes"
    assert {m: m.training for m in model.modules()} == before


def test_mc_dropout_restores_flags_after_an_error():
    model = _net(0.5).train()
    with pytest.raises(RuntimeError), U.mc_dropout(model):
        raise RuntimeError("inside")
    assert all(m.training for m in model.modules())


def test_mc_dropout_needs_dropout():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="no dropout layer"), U.mc_dropout(model):
        pass
    with pytest.raises(ValueError, match="no dropout layer"):
        U.mc_dropout_predict(model, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="nn.Module"), U.mc_dropout(lambda x: x):
        pass


def test_mc_predict_without_dropping_is_the_eval_prediction():
    """p = 0 drops nothing: every pass equals the eval-mode softmax, whatever the batching
    (a batch norm in training mode would make both depend on the batch)."""
    tc.manual_seed(1)
    model = _with_running_statistics(_net(0.0))
    x = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    probs = U.mc_dropout_predict(model, x.astype(np.float64), passes=3, batch_size=3)  # cast to float32
    assert probs.shape == (3, 7, 3) and probs.dtype == np.float64
    reference = U.predict_probabilities(model, Tensor(x), batch_size=7)
    for t in range(3):
        np.testing.assert_allclose(probs[t], reference, rtol=1e-6)
    model.eval()
    with tc.no_grad():
        logits = model(Tensor(x)).numpy().astype(np.float64)
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(reference, softmax, rtol=1e-6)
    assert model.training is False  # predict_probabilities gave back the eval flag it found


def test_mc_predict_drops_at_the_rate_p():
    # logits (2a, 0) when the unit is kept (scaled by 1/(1 - p)), (0, 0) when dropped
    tc.manual_seed(2)
    model = nn.Sequential(nn.Dropout(0.5))
    x = np.array([[1.5, 0.0]], dtype=np.float32)
    probs = U.mc_dropout_predict(model, x, passes=400)
    sigmoid3 = 1 / (1 + math.exp(-3.0))
    kept = np.isclose(probs[:, 0, 0], sigmoid3)
    dropped = np.isclose(probs[:, 0, 0], 0.5)
    assert np.all(kept | dropped)
    assert abs(dropped.mean() - 0.5) < 0.1  # binomial: standard deviation 0.025
    np.testing.assert_allclose(U.predictive_mean(probs)[0, 0], 0.5 + kept.mean() * (sigmoid3 - 0.5))
    tc.manual_seed(2)
    np.testing.assert_array_equal(U.mc_dropout_predict(model, x, passes=400), probs)  # repeatable


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(passes=0), ValueError, "passes must be a positive int"),
    (dict(batch_size=-1), ValueError, "batch_size must be a positive int"),
    (dict(passes=2.5), ValueError, "passes must be a positive int, got 2.5"),
])
def test_mc_predict_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        U.mc_dropout_predict(_net(0.5), np.zeros((2, 4), np.float32), **kwargs)


def test_inputs_must_be_a_batch():
    with pytest.raises(ValueError, match="batch"):
        U.mc_dropout_predict(_net(0.5), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="batch"):
        U.predict_probabilities(_net(0.5), np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"logits \(N, C\)"):
        U.predict_probabilities(nn.Sequential(nn.Flatten(0)), np.zeros((2, 4), np.float32))
