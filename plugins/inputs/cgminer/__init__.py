"""Input ``cgminer``: any cgminer-compatible RPC on TCP 4028 (bmminer included)."""
