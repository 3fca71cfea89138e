"""Writing Hub eval-results files needs huggingface_hub's eval-results API, which the huggingface_hub that
transformers 4.x allows (< 1.0) lacks: the command says so in one line instead of an ImportError."""

from __future__ import annotations

import huggingface_hub
import pytest

from modality_conflict.analysis import eval_results


def test_an_old_huggingface_hub_is_named_with_the_version_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "EvalResultEntry", None, raising=False)  # as in 0.36
    monkeypatch.setattr(huggingface_hub, "__version__", "0.36.2")
    with pytest.raises(RuntimeError) as error:
        eval_results.eval_result_entries({}, dataset_id="org/data")
    message = str(error.value)
    assert "\n" not in message
    assert f"needs huggingface_hub >= {eval_results.HUB_EVAL_RESULTS_VERSION}" in message
    assert "this environment has 0.36.2" in message
