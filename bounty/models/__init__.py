"""The data of the service: model versions, bounties and their slots, submissions, transactions."""

from bounty.models.bounties import Bounty, ModelVersion, Slot, SlotKind
from bounty.models.submissions import Reason, Submission
from bounty.models.transactions import Transaction

__all__ = ["Bounty", "ModelVersion", "Reason", "Slot", "SlotKind", "Submission", "Transaction"]
