"""The role actors (pykka) and the policy maths. Imports `messages`, `runtime`, `venue`; never `supervisor`."""
