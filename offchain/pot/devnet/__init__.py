"""The whole PoT network on one machine: ``pot devnet`` (``network``) and ``pot demo`` (``demo``)."""

from pot.devnet.network import (
    DEFAULT_CONFIG,
    DEV_MNEMONIC,
    Devnet,
    DevnetConfig,
    DevnetError,
    Participant,
    dev_account,
    load_devnet_config,
    participants,
)

__all__ = ["DEFAULT_CONFIG", "DEV_MNEMONIC", "Devnet", "DevnetConfig", "DevnetError", "Participant", "dev_account",
           "load_devnet_config", "participants"]
