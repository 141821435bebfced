"""CCC, PCC, RMSE against direct numpy formulas, on random and degenerate sequences."""

import numpy as np
import pytest
import torch

from pdmer.errors import InputError
from pdmer.metrics import ccc, pcc, rmse, va_scores


def np_ccc(x, y):
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def np_pcc(x, y):
    return np.corrcoef(x, y)[0, 1]


def np_rmse(x, y):
    return np.sqrt(np.mean((x - y) ** 2))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("length", [2, 60, 1224])
def test_random_sequences_match_numpy(seed, length):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, length)
    y = 0.5 * x + rng.normal(0, 0.3, length) + 0.1
    assert ccc(x, y).item() == pytest.approx(np_ccc(x, y), abs=1e-12)
    assert pcc(x, y).item() == pytest.approx(np_pcc(x, y), abs=1e-12)
    assert rmse(x, y).item() == pytest.approx(np_rmse(x, y), abs=1e-12)


def test_batched_over_leading_axes():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 4, 30)), rng.normal(size=(3, 4, 30))
    expected = np.array([[np_ccc(x[i, j], y[i, j]) for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(ccc(x, y).numpy(), expected, atol=1e-12)


def test_float32_inputs_agree_within_float_precision():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=60).astype(np.float32), rng.normal(size=60).astype(np.float32)
    assert ccc(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(np_ccc(x.astype(float), y.astype(float)), abs=1e-6)


def test_perfect_and_inverted_agreement():
    x = np.linspace(-1, 1, 50)
    assert ccc(x, x).item() == pytest.approx(1.0)
    assert pcc(x, -x).item() == pytest.approx(-1.0)
    assert pcc(x, 3 * x + 2).item() == pytest.approx(1.0)
    assert ccc(x, 3 * x + 2).item() < 0.5  # CCC penalises scale and offset, PCC does not
    assert rmse(x, x).item() == 0.0


@pytest.mark.parametrize(
    "x, y, expected_ccc, expected_pcc",
    [
        (np.full(20, 0.3), np.full(20, 0.3), 1.0, 0.0),  # identical constants: documented CCC 1, PCC 0
        (np.full(20, 0.3), np.full(20, -0.2), 0.0, 0.0),  # different constants
        (np.full(20, 0.3), np.linspace(-1, 1, 20), 0.0, 0.0),  # constant prediction of a varying target
        (np.zeros(1), np.zeros(1), 1.0, 0.0),  # a single step
    ],
)
def test_degenerate_sequences_have_documented_values(x, y, expected_ccc, expected_pcc):
    assert ccc(x, y).item() == expected_ccc
    assert pcc(x, y).item() == expected_pcc
    assert rmse(x, y).item() == pytest.approx(np_rmse(x, y))
    with np.errstate(invalid="ignore", divide="ignore"):
        if not np.isnan(np_ccc(x, y)):
            assert ccc(x, y).item() == pytest.approx(np_ccc(x, y))


def test_degenerate_inputs_keep_gradients_finite():
    pred = torch.full((10,), 0.2, requires_grad=True)
    (ccc(pred, torch.full((10,), 0.2)) + pcc(pred, torch.full((10,), 0.2))).backward()
    assert torch.isfinite(pred.grad).all()
    # A varying prediction of a constant target (a curve clipped at the scale's end), and an exact prediction.
    moving = torch.linspace(-0.5, 0.5, 10, requires_grad=True)
    (ccc(moving, torch.ones(10)) + pcc(moving, torch.ones(10)) + rmse(moving, moving.detach())).backward()
    assert torch.isfinite(moving.grad).all()


def test_va_scores_average_per_song_scores():
    rng = np.random.default_rng(3)
    pred, target = rng.uniform(-1, 1, (4, 60, 2)), rng.uniform(-1, 1, (4, 60, 2))
    scores = va_scores(pred, target)
    assert set(scores) == {f"{d}_{m}" for d in ("valence", "arousal") for m in ("ccc", "pcc", "rmse")}
    assert scores["valence_ccc"].item() == pytest.approx(np.mean([np_ccc(pred[i, :, 0], target[i, :, 0]) for i in range(4)]))
    assert scores["arousal_rmse"].item() == pytest.approx(np.mean([np_rmse(pred[i, :, 1], target[i, :, 1]) for i in range(4)]))


@pytest.mark.parametrize("shapes", [((5,), (6,)), ((), ()), ((0,), (0,))])
def test_mismatched_or_empty_inputs_are_named(shapes):
    with pytest.raises(InputError, match="same non-empty shape"):
        ccc(np.zeros(shapes[0]), np.zeros(shapes[1]))


def test_va_scores_needs_songs_steps_two():
    with pytest.raises(InputError, match=r"\[songs, steps, 2\]"):
        va_scores(np.zeros((60, 2)), np.zeros((60, 2)))
