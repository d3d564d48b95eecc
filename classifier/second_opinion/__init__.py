"""An optional second, off-chain model that must agree with the published one before the operator co-signs.

The published integer MLP is public by design (it is in every locking script), so anyone can optimise an
image against it (see classifier/adversarial.py and docs/threats.md). A model of a different kind, whose
weights are not published, is a cheap filter: a perturbation tuned to the MLP's piecewise-linear regions
rarely moves a small CNN to the same target.

    artifact.py  the `.npz` + JSON manifest format (format_version, weights sha256)
    network.py   the forward pass in numpy (what the service runs; no TensorFlow per request)
    model.py     `SecondOpinion` (weights, inference, agreement) and the service's `agrees`
    training.py  training with Keras, checked against the numpy pass
    attacks.py   how much of the attack on the published model it stops

The commands (`python -m classifier second-opinion train|evaluate|transfer`) are in classifier/cli.py.
Training and attack evaluation import Keras only when called, so importing this package stays light.
"""

from classifier.second_opinion.artifact import ARRAY_NAMES, DEFAULT_PATH, FORMAT_VERSION
from classifier.second_opinion.attacks import KerasSurrogate, evaluate, evaluate_transfer, stopped_by
from classifier.second_opinion.model import (
    DEFAULT_MIN_CONFIDENCE,
    SecondOpinion,
    agrees,
    load_cached,
    second_opinion_digit,
)
from classifier.second_opinion.network import FORWARD_TOLERANCE
from classifier.second_opinion.training import (
    TrainingOptions,
    build_network,
    forward_difference,
    from_keras,
    measure_genuine,
    train,
)

__all__ = [
    "ARRAY_NAMES",
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_PATH",
    "FORMAT_VERSION",
    "FORWARD_TOLERANCE",
    "KerasSurrogate",
    "SecondOpinion",
    "TrainingOptions",
    "agrees",
    "build_network",
    "evaluate",
    "evaluate_transfer",
    "forward_difference",
    "from_keras",
    "load_cached",
    "measure_genuine",
    "second_opinion_digit",
    "stopped_by",
    "train",
]
