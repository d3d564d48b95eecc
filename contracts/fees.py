"""Fee rates: satoshis per 1,000 bytes, the unit miners publish in their policy (100 sat/kB in 2026)."""

from __future__ import annotations

from dataclasses import dataclass

from bsv.fee_models import SatoshisPerKilobyte

DEFAULT_FEE_RATE = 100


@dataclass(frozen=True)
class FeeRate:
    """A relay fee rate. `fee_for` rounds up, so a fee it computes always `covers` the size."""

    satoshis_per_kb: int = DEFAULT_FEE_RATE

    def __post_init__(self) -> None:
        if self.satoshis_per_kb < 0:
            raise ValueError(f"a fee rate cannot be negative, got {self.satoshis_per_kb}")

    def fee_for(self, size: int) -> int:
        return -(-size * self.satoshis_per_kb // 1000)

    def covers(self, fee: int, size: int) -> bool:
        return fee * 1000 >= size * self.satoshis_per_kb

    def model(self) -> SatoshisPerKilobyte:
        """The bsv-sdk fee model for this rate (always pass one: its default asks a public server)."""
        return SatoshisPerKilobyte(self.satoshis_per_kb)
