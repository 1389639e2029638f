"""Making an nkey pair for a site or a hub (``webbo cluster nkey``): the seed stays with the
agent (a 0600 file that ``nkey_seed`` names), the public key goes into the NATS server's config
(``{ nkey: U..., permissions: ... }``). No password crosses the network: the server sends a
nonce, the agent signs it."""

from __future__ import annotations

import os
from pathlib import Path

import nkeys

__all__ = ["new_user_nkey", "write_seed"]


def new_user_nkey() -> tuple[str, str]:
    """(seed ``SU...``, public key ``U...``) of a new user nkey."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key
    return seed.decode(), public.decode()


def write_seed(path: Path, seed: str) -> None:
    """Write the seed readable by its owner only (refuses to overwrite a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed + "\n")
