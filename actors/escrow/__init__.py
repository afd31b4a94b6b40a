"""The escrow role: `manager.EscrowManager` and its ledger maths, store, recovery and venue clients."""
