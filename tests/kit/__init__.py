"""Test kit: helpers and fixtures shared by several test modules (no tests here).

Test modules import helpers from `tests.kit.*`; fixtures live in conftest.py files (the sandbox
fixtures in tests/kit/sandbox.py are loaded for every test by tests/conftest.py), so no test
module imports another.
"""
