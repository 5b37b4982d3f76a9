"""Web dashboard and JSON API over a workspace, with users, roles and TLP clearance.

``create_app(ws)`` builds the FastAPI application that ``sightline serve`` runs; users are
managed with :class:`UserStore` (``sightline users ...``).  What a user sees is filtered by
:func:`filter_for_clearance` once per request.
"""

from .access import filter_for_clearance
from .app import create_app
from .security import LoginRateLimiter
from .users import ROLES, User, UserStore

__all__ = ["create_app", "filter_for_clearance", "LoginRateLimiter", "ROLES", "User", "UserStore"]
