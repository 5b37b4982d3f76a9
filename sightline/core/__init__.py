"""Policies every stage shares, each written once: TLP (:mod:`.tlp`) and verdicts (:mod:`.verdicts`)."""
