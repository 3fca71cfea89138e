"""The support matrix covers the whole tiny zoo, and the README shows it as rendered."""

from __future__ import annotations

import pytest
import support_matrix
from tiny_zoo import ARCHITECTURES

STATUSES = {"supported", "refused", "text rows only"}
WRAPPER_STATUSES = {
    "supported",
    "broken upstream",
    "missing dependency",
    "refused",
    "no wrapper",
    "not checked",
}
UPSTREAM = ("lmms_eval/", "transformers/")  # never the project's own code
SIGNATURE = ("exception", "message", "raised_in", "function")


def test_every_tiny_architecture_has_one_row() -> None:
    assert sorted(support_matrix.load()["architectures"]) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("major", [4, 5])
def test_every_cell_has_a_known_status_and_every_refusal_its_evidence(major: int) -> None:
    for name, row in support_matrix.load(transformers_major=major)["architectures"].items():
        for path in support_matrix.WRAPPER_PATHS:
            cell = row[path]
            assert cell["status"] in STATUSES, (name, path)
            if cell["status"] != "supported":
                assert cell.get("reason") and cell.get("evidence"), (name, path)
        for entry in row["lmms_eval"]:
            assert entry["status"] in WRAPPER_STATUSES, name
            assert entry.get("reason") or entry["status"] == "supported", name
            if entry["status"] in support_matrix.FAILING_WRAPPER_STATUSES:
                # The exception, its message and the upstream place that raises it: what the CLI test matches.
                assert all(entry.get(key) for key in SIGNATURE), (name, entry["wrapper"])
                assert entry["raised_in"].startswith(("lmms_eval/", "transformers/")), (
                    name,
                    entry["wrapper"],
                )


def test_readme_shows_the_rendered_matrix() -> None:
    section = support_matrix.readme_section(support_matrix.README.read_text(encoding="utf-8"))
    assert section == support_matrix.render_markdown(), (
        "README.md's support matrix is stale: run `python tests/support_matrix.py --write`"
    )
