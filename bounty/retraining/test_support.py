"""Settings that make a retraining run take seconds (a short training on a MNIST subset), for tests."""

import json

SHORT_ENVIRONMENT = {
    "RETRAIN_OPTIONS": json.dumps({"epochs": 2, "prune_steps": 1, "prune_epochs": 1, "quant_epochs": 1}),
    "RETRAIN_MNIST_LIMIT": "6000",
    "RETRAIN_MIN_NEW_IMAGES": "1",
    "RETRAIN_HELDOUT_PERCENT": "0",
    "RETRAIN_GATE_DIGITS": "7",
    "RETRAIN_MAX_ACCURACY_DROP": "0.01",
}
