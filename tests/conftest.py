"""Test-wide settings.

Under CI (``CI=true``) hypothesis runs derandomized: the same examples every run, so a
red CI always means a change broke something.  Finding new crashing inputs is the job of
the randomized campaigns in ``make reliability``, whose finds become regression inputs.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")
