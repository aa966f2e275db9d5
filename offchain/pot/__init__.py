"""PoT: a decentralized training network implementing the Proof-of-Training protocol."""
__version__ = "0.1.0"
