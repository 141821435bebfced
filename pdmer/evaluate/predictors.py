"""What ``pdmer eval`` scores: a model (DSAML or a baseline) (adapted per listener for the personalized task) or a trivial baseline.

A predictor maps a curve to its predicted V-A (for the labels that have audio); ``personalize(support)`` returns a
predictor for the listener of those support curves and leaves the original untouched.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

from pdmer.data.curves import QUADRANT_SIGNS, Curve, CurveSet
from pdmer.data.features import FeatureCache
from pdmer.errors import InputError
from pdmer.model.adapt import AdaptConfig, Weights, adapt
from pdmer.model.inference import SlidingWindows, predict_song


class Predictor(Protocol):
    name: str

    def predict(self, curve: Curve) -> np.ndarray:
        """[T', 2] (valence, arousal) for the first T' <= T labels of ``curve`` (those with a whole audio slice)."""

    def predict_song(self, song: str) -> np.ndarray:
        """[N, 2] for every whole 0.5 s slice of the song's audio (song-level labels are scored on their mean)."""

    def personalize(self, support: list[Curve]) -> Predictor:
        """A predictor for the listener who annotated ``support``."""


class ConstantPredictor:
    """Predicts one V-A value everywhere: the training mean (``adapt=False``) or the support curves' mean."""

    def __init__(self, value, *, name: str = "training mean", adapt: bool = False):
        self.value = np.asarray(value, dtype=np.float32)
        self.name, self.adapt = name, adapt

    @classmethod
    def training_mean(cls, train: CurveSet, *, adapt: bool = False) -> ConstantPredictor:
        """Mean V-A over every label of the training split's averaged curves (one value per dimension); for a
        dataset of song-level quadrants, the mean of their signs (+-1)."""
        curves = train.mean_curves()
        if curves:
            value = np.concatenate([c.va for c in curves]).mean(axis=0)
        elif train.quadrants:
            value = np.array([QUADRANT_SIGNS[q] for q in train.quadrants.values()], dtype=np.float64).mean(axis=0)
        else:
            raise InputError(f"{train.name}: no labels to take a training mean from")
        return cls(value, name="support mean" if adapt else "training mean", adapt=adapt)

    def predict(self, curve: Curve) -> np.ndarray:
        return np.broadcast_to(self.value, curve.va.shape).copy()

    def predict_song(self, song: str) -> np.ndarray:
        return self.value[None].copy()

    def personalize(self, support: list[Curve]) -> ConstantPredictor:
        if not self.adapt:
            return self
        return ConstantPredictor(np.concatenate([c.va for c in support]).mean(axis=0), name=self.name, adapt=True)


class ModelPredictor:
    """A model over cached features; ``personalize`` runs one-shot adaptation (:func:`pdmer.model.adapt.adapt`)."""

    def __init__(
        self,
        model: nn.Module,
        cache: FeatureCache,
        dataset: CurveSet,
        *,
        name: str = "DSAML",
        adaptation: AdaptConfig = AdaptConfig(),
        windows: SlidingWindows = SlidingWindows(),
        weights: Weights | None = None,
    ):
        self.model, self.cache, self.dataset = model.eval(), cache, dataset
        self.name, self.adaptation, self.windows, self.weights = name, adaptation, windows, weights
        self.songs: dict[str, np.ndarray] = {}  # song -> its prediction: listeners share songs, weights never change
        self.with_inputs: dict[str, tuple] = {}  # song -> (prediction, the last layer's inputs per step)
        self.base: ModelPredictor | None = None  # set on a profile adapted on the last layer alone

    def features(self, curve: Curve):
        return self.cache.song(self.dataset.songs[curve.song].audio).for_curve(curve)

    def predict(self, curve: Curve) -> np.ndarray:
        """The curve's rows of the whole song's causal prediction (a curve that starts at 15 s, as DEAM's, is
        predicted with the 15 s before it heard, as the stream would)."""
        count = len(self.features(curve)[2])
        return self.predict_song(curve.song)[curve.first_step : curve.first_step + count]

    def predict_song(self, song: str) -> np.ndarray:
        if song not in self.songs:
            if self.base is not None:  # the base model's pass, with this profile's last layer
                self.songs[song] = self.base.with_last_layer(song, self.weights)
            else:
                features = self.cache.song(self.dataset.songs[song].audio)
                self.songs[song] = self.run(features.log_mel, features.global_feat)
        return self.songs[song]

    def last_layer(self, weights: Weights | None) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.model.OUTPUT[0]
        own = dict(self.model.named_parameters()) if weights is None else weights
        return own[f"{name}.weight"].detach(), own[f"{name}.bias"].detach()

    def with_last_layer(self, song: str, weights: Weights) -> np.ndarray:
        """The song as a model that differs from this one in its last layer only (``weights``) predicts it: everything
        before that layer is this model's, so its pass is reused. Exact: the last layer is linear."""
        if song not in self.with_inputs:
            features = self.cache.song(self.dataset.songs[song].audio)
            self.with_inputs[song] = predict_song(self.model, features.log_mel, features.global_feat,
                                                  weights=self.weights, windows=self.windows, with_last_inputs=True)
        va, inputs = self.with_inputs[song]
        (weight, bias), (own_weight, own_bias) = self.last_layer(weights), self.last_layer(self.weights)
        return (va + inputs @ (weight - own_weight).T + (bias - own_bias)).numpy()

    def run(self, mel: torch.Tensor, global_feat: torch.Tensor) -> np.ndarray:
        return predict_song(self.model, mel, global_feat, weights=self.weights, windows=self.windows).numpy()

    def personalize(self, support: list[Curve]) -> ModelPredictor:
        with torch.enable_grad():
            weights, _ = adapt(self.model, [self.features(c) for c in support], self.adaptation, weights=self.weights)
        weights = {name: w.detach() for name, w in weights.items()}
        adapted = ModelPredictor(self.model, self.cache, self.dataset, name=self.name, adaptation=self.adaptation,
                                 windows=self.windows, weights=weights)
        if self.adaptation.params in ("output", "bias") and len(self.model.OUTPUT) == 1:
            adapted.base = self  # only the last layer changed: reuse this model's passes (listeners share songs)
        return adapted
