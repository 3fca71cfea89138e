"""Hooks that the modality_conflict task YAMLs name with ``!function utils.<name>``.

lmms-eval imports this file by path, so it stays a thin shim: the logic lives in the installed package
``modality_conflict.mc_tasks.task_logic`` where it is tested like any other module.
"""

from modality_conflict.mc_tasks.task_logic import (  # noqa: F401
    aggregate_balance_point,
    aggregate_balance_point_ci_high,
    aggregate_balance_point_ci_low,
    aggregate_entropy_estimator,
    aggregate_mean_dh,
    aggregate_mean_ht,
    aggregate_mean_hv,
    aggregate_n_conflicts,
    aggregate_other_rate,
    aggregate_report,
    aggregate_tfr,
    aggregate_tfr_correct,
    aggregate_vfr,
    doc_to_choice,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    process_docs_controls,
    process_docs_quick,
    process_results,
    process_results_loglik,
    process_results_sampled,
)
