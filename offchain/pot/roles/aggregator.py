"""The aggregator: one replica of the committee (work in progress; see aggregator_config)."""

from pot.roles.aggregator_config import (AggregatorConfig, AggregatorConfigError, committee_keys,
                                         load_aggregator_config, local_committee_configs)

__all__ = ["AggregatorConfig", "AggregatorConfigError", "committee_keys", "load_aggregator_config",
           "local_committee_configs"]
