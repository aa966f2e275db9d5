"""The global ledger: PoT's rules (from ``pot.protocol``) as a persistent, replicated state machine."""

from pot.ledger.ledger import Ledger, LedgerConfig
from pot.ledger.machine import LedgerStateMachine

__all__ = ["Ledger", "LedgerConfig", "LedgerStateMachine"]
