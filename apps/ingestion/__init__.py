"""Inbound mail: MIME parsing, HTML sanitising and outbound MIME building (pure modules)."""
