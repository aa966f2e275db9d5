"""Pure PoT: data types, ids, EIP-712 messages, the wire codec, the timeline and finalize.

No I/O here; the ledger, the workers and the tests all call these rules.
"""

from pot.protocol.codec import DecodeError, decode, encode, from_json, to_json
from pot.protocol.eip712 import Domain, address_of_key, recover_digest, sign_digest
from pot.protocol.finalize import (NeedsVerification, OrderCycle, OrderOutcome, Params, disputed_models,
                                   finalize, finalize_order, model_scores)
from pot.protocol.ids import (challenge_commitment, claim_commitment, keccak, mid_of, model_type_from_bytes,
                              model_type_to_bytes, test_commitment, validation_commitment, vid)
from pot.protocol.settlement import (ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash)
from pot.protocol.timeline import Phase, Timeline, phase, timeline
from pot.protocol.types import (AGGREGATOR, MINER, VALIDATOR, VERIFIER, CancelRequest, Challenge, ChainAttestation,
                                ChallengeCommitted, ChallengeRevealed, ClaimCommit, ClaimReveal, Message, Op,
                                Order, OrderPlaced, Reason, Result, SettlementExecuted, SettlementSignature,
                                Signed, StakeChanged, TestDataReleased, Tick, ValidationCommit,
                                ValidationReveal, VerifyResult)

__all__ = [n for n in dir() if not n.startswith("_")]
