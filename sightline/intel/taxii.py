"""TAXII 2.1 pull: fetch a collection's objects (paged, incremental) and load them.

``added_after`` of the last successful pull is saved per (API root, collection) in
``<workspace>/intel/taxii_state.json``; the next pull asks only for newer objects.  The
password comes from the environment (the CLI's ``--password-env``), never from arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import IntelError
from ..store import Workspace, atomic_write_json
from .loader import load_documents
from .model import IntelLoad
from .store import add_to_workspace


@dataclass
class PullResult:
    load: IntelLoad
    counts: dict[str, int]
    objects: int
    pages: int
    added_after: str | None


def _state_path(ws: Workspace):  # type: ignore[no-untyped-def]
    return ws.intel_dir / "taxii_state.json"


def _collection_url(url: str, collection: str) -> str:
    base = url.rstrip("/") + "/"
    if "/collections/" in base:
        return base
    return f"{base}collections/{collection}/"


def pull_collection(
    ws: Workspace,
    url: str,
    collection: str,
    *,
    user: str | None = None,
    password: str | None = None,
    full: bool = False,
) -> PullResult:
    """Pull objects added since the last pull from a TAXII 2.1 collection into the workspace."""
    from taxii2client.exceptions import TAXIIServiceException
    from taxii2client.v21 import Collection, as_pages

    ws.ensure()
    key = f"{url.rstrip('/')}|{collection}"
    state: dict[str, Any] = {}
    if _state_path(ws).exists():
        state = json.loads(_state_path(ws).read_text("utf-8"))
    added_after = None if full else state.get(key)
    objs: list[Any] = []
    pages = 0
    last_added: str | None = added_after
    try:
        col = Collection(_collection_url(url, collection), user=user, password=password)
        kwargs = {"added_after": added_after} if added_after else {}
        for env in as_pages(col.get_objects, per_request=100, **kwargs):
            pages += 1
            objs.extend(env.get("objects", []))
        # the manifest is paged like the objects; only entries of objects actually pulled
        # count, so an object added between the two requests is not skipped next time
        pulled = {o.get("id") for o in objs if isinstance(o, dict)}
        for env in as_pages(col.get_manifest, per_request=100, **kwargs) if objs else []:
            for m in env.get("objects", []):
                d = m.get("date_added")
                if d and m.get("id") in pulled and (last_added is None or d > last_added):
                    last_added = d
    except (TAXIIServiceException, OSError, ValueError) as e:
        raise IntelError(
            f"TAXII pull failed: {e}",
            path=url,
            field=collection,
            hint="check the URL, collection id and credentials (--user, SIGHTLINE_TAXII_PASSWORD)",
        ) from e
    except Exception as e:  # requests' HTTP errors carry the status and URL
        if type(e).__module__.startswith("requests"):
            raise IntelError(
                f"TAXII pull failed: {e}",
                path=url,
                field=collection,
                hint="check the URL, collection id and credentials",
            ) from e
        raise
    source = f"taxii:{url.rstrip('/')}/collections/{collection}"
    load = load_documents([(source, url, {"type": "bundle", "objects": objs})])
    counts = add_to_workspace(ws, load)
    if last_added:
        state[key] = last_added
        atomic_write_json(_state_path(ws), state)
    return PullResult(load, counts, len(objs), pages, last_added)


__all__ = ["pull_collection", "PullResult"]
