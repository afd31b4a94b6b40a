"""The contract: typed messages, envelope, money (integer micro-USD), codec, errors. Pure: no I/O."""
