"""The DSAML model: preprocessing, adapter, dual-scale attention transformer, predictor, loss, loaders."""

from pdmer.model.config import ModelConfig
from pdmer.model.dsaml import DSAML, DSAMLOutput

__all__ = ["DSAML", "DSAMLOutput", "ModelConfig"]
