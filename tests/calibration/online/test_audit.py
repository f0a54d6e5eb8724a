"""Tests for adanet.calibration.online.audit: which images are audited, and what they say."""

from __future__ import annotations

import torch

from adanet.calibration.online.audit import (
    AUDIT,
    WOULD_CONF,
    WOULD_EXIT,
    WOULD_PRED,
    AuditLedger,
    audit_mask,
    noted_replay,
)


def test_audits_are_deterministic_evenly_spread_and_seeded() -> None:
    first = audit_mask(0, 20000, 0.05, seed=0)
    assert torch.equal(first, audit_mask(0, 20000, 0.05, seed=0))
    assert torch.equal(first[700:900], audit_mask(700, 200, 0.05, seed=0))
    # Every stretch of 200 images holds close to 5% audits (no clumps, no droughts).
    counts = first.view(-1, 200).sum(dim=1)
    assert int(counts.min()) >= 8 and int(counts.max()) <= 12
    assert not torch.equal(first, audit_mask(0, 20000, 0.05, seed=1))
    assert not bool(audit_mask(0, 100, 0.0, seed=0).any())


def test_ledger_ratio_starts_cautious_and_follows_the_evidence() -> None:
    ledger = AuditLedger()
    start = ledger.ratio
    assert start > 1.0  # no audits yet: the upper bound trusts the map only upward
    ledger.add(torch.ones(60), torch.full((60,), 0.25))  # 60 seen where 15 were predicted
    assert ledger.ratio > 3.0
    quiet = AuditLedger()
    quiet.add(torch.zeros(2000), torch.full((2000,), 0.05))  # 0 seen where ~100 predicted
    assert quiet.ratio < 0.2


def test_a_replay_sends_audited_samples_to_the_last_exit_and_notes_where_they_would_leave() -> None:
    # Three exits, four samples; the classes are chosen so every exit predicts differently.
    logits = torch.tensor(
        [
            [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]],
            [[0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0], [0, 5.0, 0]],
            [[0, 0, 5.0], [5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]],
        ]
    )
    confidence = [torch.tensor([0.9, 0.2, 0.3, 0.8]), torch.tensor([0.1, 0.7, 0.2, 0.6])]
    would = torch.tensor([0, 1, 2, 0])
    notes = torch.zeros(4, 5, dtype=torch.float64)
    notes[:, AUDIT] = torch.tensor([1.0, 1.0, 1.0, 0.0])
    exits, noted = noted_replay(logits, confidence, would, notes)
    assert exits.tolist() == [2, 2, 2, 0]  # audited samples run to the last exit
    assert noted[:, WOULD_EXIT].tolist() == [0, 1, 2, 0]
    assert noted[:, WOULD_PRED].tolist() == [0, 2, 0, 0]  # 0 where the last exit was reached
    torch.testing.assert_close(
        noted[:, WOULD_CONF], torch.tensor([0.9, 0.7, 0.0, 0.8], dtype=torch.float64)
    )
    assert notes[:, WOULD_EXIT].tolist() == [0, 0, 0, 0]  # the input notes are not changed
