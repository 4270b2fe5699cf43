"""What runs in the workers: the model interface, the bundle kinds, the batch of features, the
transform ops and the predictor that ties them together.

``ModelHandler`` is importable from here for ``python`` bundles: ``from common.model import ModelHandler``.
"""

from common.model.handler import ModelHandler

__all__ = ["ModelHandler"]
