"""The hand-written async implementation; ``redkit._sync`` is generated from it."""
