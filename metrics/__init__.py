"""Statistics of modality conflicts: entropies, following rates, the balance point and the monotonic law.

Pure numpy/scipy and agnostic of the answer set (candidates and synonyms are inputs). :func:`summarize`
turns :class:`ConflictItems` into a :class:`ConflictReport`; the building blocks are importable on their own.
"""

from modality_conflict.metrics._common import Interval, wilson_interval
from modality_conflict.metrics.answers import OTHER, first_named_answer, normalize_answer, normalize_answers
from modality_conflict.metrics.balance import (
    BALANCE_STATUSES,
    BalancePointResult,
    IsotonicCrossing,
    balance_point,
    isotonic_crossing,
)
from modality_conflict.metrics.entropy import (
    ESTIMATORS,
    EntropyEstimate,
    answer_set_entropy,
    full_vocab_entropy,
    sampled_answer_entropy,
)
from modality_conflict.metrics.following import (
    FOLLOWING_LABELS,
    FollowingRates,
    classify_following,
    following_rates,
)
from modality_conflict.metrics.grids import TierGrids, tier_grids
from modality_conflict.metrics.items import ConflictItems
from modality_conflict.metrics.law import (
    BinnedCurve,
    LawResult,
    RobustnessResult,
    binned_curve,
    monotonic_law,
    robustness_split,
)
from modality_conflict.metrics.probing import (
    LENS_LABELS,
    OscillationSummary,
    count_oscillations,
    oscillation_summary,
)
from modality_conflict.metrics.report import ConflictReport, summarize
from modality_conflict.metrics.simulate import simulate_items
from modality_conflict.metrics.top_k_entropy import TopKEntropy, top_k_entropy_bounds
from modality_conflict.metrics.uncertainty import relative_uncertainty

__all__ = [
    "BALANCE_STATUSES",
    "ESTIMATORS",
    "FOLLOWING_LABELS",
    "LENS_LABELS",
    "OTHER",
    "BalancePointResult",
    "BinnedCurve",
    "ConflictItems",
    "ConflictReport",
    "EntropyEstimate",
    "FollowingRates",
    "Interval",
    "IsotonicCrossing",
    "LawResult",
    "OscillationSummary",
    "RobustnessResult",
    "TierGrids",
    "TopKEntropy",
    "answer_set_entropy",
    "balance_point",
    "binned_curve",
    "classify_following",
    "count_oscillations",
    "first_named_answer",
    "following_rates",
    "full_vocab_entropy",
    "isotonic_crossing",
    "monotonic_law",
    "normalize_answer",
    "normalize_answers",
    "oscillation_summary",
    "relative_uncertainty",
    "robustness_split",
    "sampled_answer_entropy",
    "simulate_items",
    "summarize",
    "tier_grids",
    "top_k_entropy_bounds",
    "wilson_interval",
]
