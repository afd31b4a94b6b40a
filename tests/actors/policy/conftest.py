"""Hypothesis settings for the policy tests: derandomized, so every run checks the same examples.

The profile is registered, not loaded, so it does not change other test suites' settings; the
policy test modules apply it with `@POLICY`.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "policy",
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
