"""Whether what a submission claims about its data is what its run read.

A pinned task's run records ``metadata.dataset_used`` (``source``, ``fingerprint``, ``canonical``);
``submit`` and ``verify --run`` refuse a claimed dataset (repo, revision, fingerprint) that it contradicts,
so a run on other data can borrow neither a dataset's fingerprint nor a published repository's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modality_conflict.dataset_builder.canonical import KNOWN_DATASETS, USED_KEY

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def dataset_used(task_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's ``metadata.dataset_used`` when it is well formed (a fingerprint and a canonical flag)."""
    metadata = task_config.get("metadata")
    used = metadata.get(USED_KEY) if isinstance(metadata, dict) else None
    if not isinstance(used, dict):
        return None
    fingerprint, canonical = used.get("fingerprint"), used.get("canonical")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        return None
    return used if isinstance(canonical, bool) else None


def claim_problems(claimed: Mapping[str, Any], task_config: Mapping[str, Any]) -> list[str]:
    """Where a submission's ``dataset`` section (``claimed``) contradicts what the run read, according to the
    task's configuration in its results file (``configs[task]``)."""
    fingerprint = claimed.get("fingerprint")
    repo, revision = claimed.get("repo"), claimed.get("revision")
    published = [
        spec
        for spec in KNOWN_DATASETS.values()
        if repo == spec.repo_id or (spec.published and revision == spec.revision)
    ]
    if fingerprint is None and not published:
        return []  # nothing is claimed about the data (such a submission is never ranked)
    used = dataset_used(task_config)
    if used is None:
        return [
            f"the run records no {USED_KEY} (which data it read), so the claimed dataset cannot be checked "
            "against it: run the task with this package installed"
        ]
    read = f"fingerprint {used['fingerprint'][:12]}, source {used.get('source')!s}"
    problems = []
    if fingerprint is not None and fingerprint != used["fingerprint"]:
        problems.append(f"dataset.fingerprint {str(fingerprint)[:12]} is not the data the run read ({read})")
    for spec in published:
        if not used["canonical"] or used["fingerprint"] != spec.fingerprint:
            problems.append(
                f"dataset.repo/revision claim the published {spec.repo_id}@{spec.revision[:12]} "
                f"(fingerprint {spec.fingerprint[:12]}), but the run read other data ({read})"
            )
    return problems
