"""Typed messages, money, codec and key names. Pure: no I/O."""
