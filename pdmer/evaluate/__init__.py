"""``pdmer eval``: the paper's traditional and personalized DMER tasks, scored with CCC, PCC and RMSE."""

from pdmer.evaluate.predictors import ConstantPredictor, ModelPredictor, Predictor
from pdmer.evaluate.report import markdown, task_result
from pdmer.evaluate.tasks import CurveScore, personalized, traditional

__all__ = ["ConstantPredictor", "ModelPredictor", "Predictor", "markdown", "task_result", "CurveScore",
           "personalized", "traditional"]
