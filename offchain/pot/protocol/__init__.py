"""Pure PoT: data types, ids, EIP-712 messages, the wire codec, the timeline and finalize.

No I/O here; the ledger, the workers and the tests all call these rules.
"""

from pot.protocol.codec import DecodeError, decode, encode, from_json, to_json
from pot.protocol.committee import bft_quorum, default_threshold, max_faulty
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

__all__ = [
    "AGGREGATOR", "CancelRequest", "ChainAttestation", "Challenge", "ChallengeCommitted",
    "ChallengeRevealed", "ChallengeVerdict", "ClaimCommit", "ClaimReveal", "DecodeError", "Domain",
    "MINER", "Message", "NeedsVerification", "Op", "Order", "OrderCycle", "OrderOutcome",
    "OrderPlaced", "OrderSettlement", "Params", "Payout", "Phase", "Reason", "Result", "Settlement",
    "SettlementExecuted", "SettlementSignature", "Signed", "Slash", "StakeChanged",
    "TestDataReleased", "Tick", "Timeline", "VALIDATOR", "VERIFIER", "ValidationCommit",
    "ValidationReveal", "VerifyResult", "address_of_key", "bft_quorum", "challenge_commitment",
    "claim_commitment", "decode", "default_threshold", "disputed_models", "encode", "finalize", "finalize_order", "from_json",
    "keccak", "max_faulty", "mid_of", "model_scores", "model_type_from_bytes", "model_type_to_bytes", "phase",
    "recover_digest", "sign_digest", "test_commitment", "timeline", "to_json", "validation_commitment", "vid",
]
