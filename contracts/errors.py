"""Every exception that `contracts` raises, in one flat module.

Shared by all modules of the package: add a class near its relatives, never rewrite the file.
Each error carries the context a caller needs to explain it (which input, which limit, why).
"""


class ContractsError(Exception):
    """Base class of every error raised by `contracts`."""


class ModelFormatError(ContractsError):
    """A model artifact is missing, unreadable, or has wrong array names, shapes or dtypes."""


class ScriptError(ContractsError):
    """Script encoding or decoding failed (bad number, bad push, unparsable ASM)."""


class CompileError(ContractsError):
    """A model cannot be compiled (wrong digit, shapes, or a policy limit would be exceeded)."""


class ImageError(ContractsError):
    """An image for an unlocking script has the wrong shape, dtype or values."""


class VerificationError(ContractsError):
    """A script or transaction failed verification; `input_index` and `reason` say where and why."""

    def __init__(self, reason: str, *, input_index: int | None = None) -> None:
        self.reason = reason
        self.input_index = input_index
        where = f"input {input_index}: " if input_index is not None else ""
        super().__init__(f"{where}{reason}")


class PolicyError(VerificationError):
    """A miner policy limit (script size, number size, stack memory, transaction size, fee) is exceeded."""
