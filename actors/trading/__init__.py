"""The trading role: `actor.TradingBucket` and its book, sizing and venue side."""
