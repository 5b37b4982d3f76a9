"""Web dashboard and JSON API over a workspace, with users, roles and TLP clearance.

``create_app(ws)`` builds the FastAPI application that ``sightline serve`` runs (uvicorn
settings in :mod:`.server`); users are managed with :class:`UserStore` (``sightline users
...``), login sessions with :class:`~.sessions.SessionStore`.  What a user sees is shared by
the one sharing policy once per data version and clearance; cases (:mod:`sightline.cases`)
are shown at or below the user's clearance only.
"""

from .access import filter_for_clearance
from .app import create_app
from .security import LoginRateLimiter
from .users import ROLES, User, UserStore

__all__ = ["create_app", "filter_for_clearance", "LoginRateLimiter", "ROLES", "User", "UserStore"]
