"""The `silo` role: physical transfers between silos, deposit watching, reconciliation.

- `records`: the Redis records of silo transfers (the authority the bucket actors check);
- `legs`: what the bucket actors do for the silo role (land, return, fees, income, adjustments);
- `venues`: the venue operations and look-ups (wallet send, casino withdrawal, deposit lists);
- `planning`: which held legs each netted transfer carries;
- `reconcile`: every silo's venue balance against the ledger;
- `actor`: `SiloExecutor`, the role's actor.

See `docs/rebalancing.md` ("Silo transfers") for why this is a role of its own.
"""
