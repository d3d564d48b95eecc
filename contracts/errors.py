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


class ScriptFailed(VerificationError):
    """The script VM refused a spend: a rule failed or the script evaluated to false (`reason` says which)."""


class NativeVMUnavailable(ContractsError):
    """bsv-sdk's native script VM is not loaded; nothing is verified with the ~20x slower fallback."""


class PolicyError(VerificationError):
    """A miner policy limit (script size, number size, stack memory, transaction size, fee) is exceeded."""


class AddressError(ContractsError):
    """A payout address is not a P2PKH address of the expected network; `address` and `reason` say why."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"invalid address {address!r}: {reason}")


class KeyFormatError(ContractsError):
    """A private key (WIF) is malformed, of the wrong network, or a key file cannot be read."""


class InsufficientFundsError(ContractsError):
    """A wallet holds fewer satoshis than a transaction needs."""

    def __init__(self, needed: int, available: int, address: str = "") -> None:
        self.needed = needed
        self.available = available
        self.address = address
        where = f" at {address}" if address else ""
        super().__init__(f"insufficient funds{where}: need {needed} sat, have {available} sat")


class ChainError(ContractsError):
    """A chain backend failed. `permanent` is True when retrying the same request cannot succeed
    (the transaction was rejected), False when it may (the backend was unreachable, timed out, or busy)."""

    permanent: bool = False

    def __init__(
        self, message: str, *, permanent: bool | None = None, code: str | None = None, txid: str | None = None
    ) -> None:
        if permanent is not None:
            self.permanent = permanent
        self.code = code
        self.txid = txid
        super().__init__(message)


class TransactionRejected(ChainError):
    """The network (or the local ledger) refused a transaction: invalid script, low fee, too large...
    `code` is ARC's status code (e.g. "461") or the `txStatus` ARC reported (e.g. "REJECTED")."""

    permanent = True


class DoubleSpend(TransactionRejected):
    """An input of the transaction is spent by another transaction the network saw first.

    ARC says so with HTTP 200 and `txStatus` DOUBLE_SPEND_ATTEMPTED (the competitor in the mempool) or
    SEEN_IN_ORPHAN_MEMPOOL (the spent output already mined), with a later REJECTED, or with status 466.
    `competing_txids` lists the competitors ARC named; it may be empty, and then only a lookup of the spent
    outputs says who won. A competitor is not necessarily someone else's: an unlocking script is not signed,
    so a copy of our own transaction with one push changed is a valid competitor paying the same outputs.
    """

    def __init__(
        self,
        message: str,
        *,
        competing_txids: tuple[str, ...] = (),
        code: str | None = None,
        txid: str | None = None,
    ) -> None:
        self.competing_txids = tuple(competing_txids)
        super().__init__(message, code=code, txid=txid)


class ChainUnavailable(ChainError):
    """The backend could not be reached or answered with a transient error; try again later."""

    permanent = False


class TransactionNotFound(ChainError):
    """The backend does not know the requested transaction."""

    permanent = True


class FeeTooLowError(PolicyError):
    """A transaction pays less than the configured fee rate for its size."""


class TransactionTooLargeError(PolicyError):
    """A transaction or one of its scripts is over a policy size limit (ARC's 474, not a script failure)."""
