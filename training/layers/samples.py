"""The original per-sample objects: the five `LayerType` names and `PreprocessedSample`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class LayerType(str, Enum):
    """The five layers of the original design; 4 and 5 have no implementation yet."""

    LAYER1_SENSORY = "layer1_sensory"
    LAYER2_BEHAVIORAL = "layer2_behavioral"
    LAYER3_OPERATIONAL = "layer3_operational"
    LAYER4_TACTICAL = "layer4_tactical"
    LAYER5_STRATEGIC = "layer5_strategic"


@dataclass
class PreprocessedSample:
    """One model input (the original per-sample API)."""

    sample_id: str
    layer: LayerType
    features: np.ndarray
    label: int | None = None
    metadata: dict | None = None
