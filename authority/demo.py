"""`authority demo`: seed a demonstration data set, idempotently, and describe it.

The printed shape is the DESIGN.md contract. Parts appear as the capabilities
behind them exist: the citizen, business, portal and agency entries arrive
with the identity, OAuth and PKI work.
"""

from __future__ import annotations

from typing import Any

from authority.bootstrap import require_initialised
from authority.instance import Instance


def seed_demo(instance: Instance) -> dict[str, Any]:
    """Create what the demo needs if missing; return its credentials and identifiers."""
    require_initialised(instance)
    return {"issuer": instance.settings.issuer}
