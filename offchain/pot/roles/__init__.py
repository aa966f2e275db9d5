"""The long-running workers: client, miner, validator, verifier (and, in ``aggregator``, the
committee replica). They glue the packages below and hold no protocol rules of their own.

Each role has a worker class driven tick by tick (``await worker.step()`` returns the events of
that tick) and an ``async def run(config)`` that serves it until SIGINT/SIGTERM:

    from pot.roles.miner import Miner, run        # MinerConfig in pot.roles.config
    from pot.roles.gateway import LocalGateway, HttpGateway
    from pot.roles.bridge import ChainBridge      # chain logs -> ledger ops
"""
