"""Cases and the audit log: the analyst's workflow over the findings.

Public API::

    CaseStore(ws)                      # <workspace>/cases/cases.json
      .sync() / .sync_if_stale()       # attach the current findings to their cases
      .all() / .get(ref)               # every case / one by id or org id
      .update(ref, who=, where=, state=, assignee=, due=, reason=, note=, note_tlp=, clearance=)
      .record_notice(org_id, ...)      # what `notify` made for whom, when
    STATES, TRANSITIONS, visible(cases, clearance, default_tlp), counts_by_state(cases)
    audit.record(ws, what, who=, where=, **details) / audit.read(ws, since=, who=, what=)
"""

from . import audit
from .model import CLOSED_STATES, OPEN_STATES, STATES, TRANSITIONS, case_id, case_tlp, counts_by_state, visible
from .store import CaseError, CaseStore, SyncResult

__all__ = [
    "CLOSED_STATES",
    "OPEN_STATES",
    "STATES",
    "TRANSITIONS",
    "CaseError",
    "CaseStore",
    "SyncResult",
    "audit",
    "case_id",
    "case_tlp",
    "counts_by_state",
    "visible",
]
