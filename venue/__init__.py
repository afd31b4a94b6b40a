"""Clients of the Purple Flea APIs (`venue.client`) and the venues' wire format. Imports only `messages`."""
