"""Processes, the `treasury` CLI, the demo and scenarios: the top layer."""
