"""Every exception that `classifier` raises, in one flat module."""


class ClassifierError(Exception):
    """Base class of every error raised by `classifier`."""


class DataError(ClassifierError):
    """MNIST could not be obtained or its cache is unusable; the message says what to do."""


class ChecksumError(DataError):
    """A downloaded file does not have the sha256 it must have."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what} has sha256 {actual}, expected {expected}; delete it and retry, "
            "or check that the package index serves the genuine file"
        )


class ModelFormatError(ClassifierError):
    """A model artifact is missing, unreadable, or has wrong array names, shapes or dtypes."""


class ImageRejected(ClassifierError):
    """An image cannot be used (not an image, too large, blank); the message is meant for the contributor."""
