"""What every actor runs on: the bus, the commit and fence steps (and their Lua), keys and sharding,
the clock, control fan-out, the journal, shard leases and command authentication. Imports only
`messages` (see docs/architecture.md, Layering)."""
