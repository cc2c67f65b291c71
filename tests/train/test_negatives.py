"""CentiloidNegativeSampler: other subjects only, the Centiloid rule and its fallbacks, mining."""
import pytest
import torch

from bids_amyloid.errors import UsageError
from bids_amyloid.train.negatives import CentiloidNegativeSampler


def test_other_subject_and_centiloid_rule():
    subjects = ["a", "a", "b", "c", "d"]
    cl = [10.0, 40.0, 12.0, 16.0, 30.0]
    s = CentiloidNegativeSampler(subjects, cl, [0, 1, 0, 0, 1])
    # anchor 0 (subject a, CL 10): not itself, not subject a's other session; |dCL| >= 5 -> c (16), d (30)
    assert list(s.candidates(0)) == [3, 4] and s.rule(0) == ">=5"
    for _ in range(3):
        for epoch in range(20):
            for anchor in range(5):
                n = s.choose([anchor], epoch=epoch)[0]
                assert subjects[n] != subjects[anchor] and abs(cl[n] - cl[anchor]) >= 5
    # seeded by (seed, epoch, anchor): the same whatever the batch it comes in
    assert s.choose([0, 1, 2], epoch=7) == [s.choose([a], epoch=7)[0] for a in (0, 1, 2)]


def test_fallback_ladder_steps_down_below_the_minimum():
    # anchor 0 at CL 20: others at 23 (d 3), 21.5 (d 1.5), 20.5 (d 0.5) -> no >=5, one >=2.5
    s = CentiloidNegativeSampler(["a", "b", "c", "d"], [20.0, 23.0, 21.5, 20.5], [0, 1, 1, 0])
    assert s.thresholds == (5.0, 2.5, 1.0)
    assert list(s.candidates(0)) == [1] and s.rule(0) == ">=2.5"
    s2 = CentiloidNegativeSampler(["a", "c", "d"], [20.0, 21.5, 20.5], [0, 1, 0])
    assert list(s2.candidates(0)) == [1] and s2.rule(0) == ">=1"
    s3 = CentiloidNegativeSampler(["a", "d"], [20.0, 20.5], [0, 0])
    assert list(s3.candidates(0)) == [1] and s3.rule(0) == "any-other-subject"
    # a stricter minimum uses the upper rungs 15 and 10 first
    s4 = CentiloidNegativeSampler(["a", "b", "c"], [0.0, 12.0, 30.0], [0, 0, 1], min_delta=20)
    assert s4.thresholds == (20.0, 15.0, 10.0, 5.0, 2.5, 1.0) and list(s4.candidates(0)) == [2]
    s5 = CentiloidNegativeSampler(["a", "b"], [0.0, 12.0], [0, 0], min_delta=20)
    assert s5.rule(0) == ">=10"


def test_missing_centiloid_uses_the_label():
    s = CentiloidNegativeSampler(["a", "b", "c"], [None, None, 30.0], [0, 0, 1])
    assert list(s.candidates(0)) == [2]


def test_one_subject_only_is_refused():
    with pytest.raises(UsageError):
        CentiloidNegativeSampler(["a", "a"], [0.0, 50.0], [0, 1])


def test_hard_mining_picks_the_closest_valid_candidate():
    subjects = ["a", "a", "b", "c", "d"]
    cl = [0.0, 0.0, 2.0, 30.0, 50.0]  # b is invalid (|dCL| = 2 < 5), a's own session too
    bank = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [3.0, 0.0], [1.0, 0.0]])
    s = CentiloidNegativeSampler(subjects, cl, [0, 0, 0, 1, 1], mode="hard")
    anchor = torch.tensor([[0.0, 0.0]])
    assert s.choose([0], anchor_emb=anchor, bank=bank) == [4]  # closest VALID one: d at distance 1
    semi = CentiloidNegativeSampler(subjects, cl, [0, 0, 0, 1, 1], mode="hard", semi_hard=True)
    # positive at distance 2: semi-hard = closest negative farther than the positive -> c (3.0)
    assert semi.choose([0], anchor_emb=anchor, positive_emb=torch.tensor([[2.0, 0.0]]), bank=bank) == [3]
    # no candidate farther than the positive: fall back to the hardest
    assert semi.choose([0], anchor_emb=anchor, positive_emb=torch.tensor([[9.0, 0.0]]), bank=bank) == [4]
