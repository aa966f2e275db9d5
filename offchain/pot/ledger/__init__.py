"""The global ledger: PoT's rules (from ``pot.protocol``) as a persistent, replicated state machine."""

from pot.ledger.ledger import Ledger, LedgerConfig
from pot.ledger.machine import LedgerStateMachine
from pot.ledger.records import Status

__all__ = ["Ledger", "LedgerConfig", "LedgerStateMachine", "Status"]
