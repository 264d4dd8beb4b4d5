"""Foundations every stage shares: user errors, the cache and file-writing rules, digests."""
