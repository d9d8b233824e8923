"""Models are built one at a time: every entry point that builds or loads a model or adapter waits
while another thread builds one (transformers patches process-wide state while it builds), and a
thread that already builds may build again inside (an adapter on the model it just loaded)."""

from __future__ import annotations

import threading

import pytest
import torch

from unlearn_studio.core.model import loading as models
from unlearn_studio.core.model.building import building_models
from unlearn_studio.core.paths import demo_model_dir

TIMEOUT_S = 120  # generous: the test machine is shared; an idle one takes well under a second


def base_model():
    return models.load_model(demo_model_dir(), device="cpu").model


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapter")
    models.attach_lora(base_model(), r=2, roles=["q"]).save_pretrained(str(folder))
    return folder


ENTRY_POINTS = {
    "load_model": lambda adapter: base_model(),
    "describe_model_folder": lambda adapter: models.describe_model_folder(demo_model_dir(), device="cpu"),
    "attach_lora": lambda adapter: models.attach_lora(base_model(), r=2, roles=["q"]),
    "load_adapter": lambda adapter: models.load_adapter(base_model(), adapter),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_building_waits_while_another_thread_builds(entry, adapter_dir):
    outcome: dict = {}

    def build():
        try:
            outcome["value"] = ENTRY_POINTS[entry](adapter_dir)
        except BaseException as error:  # noqa: BLE001 — reported by the test thread
            outcome["error"] = error

    with building_models():
        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        assert building_models.wait_for_waiting(1, TIMEOUT_S), f"{entry} built while another thread was building"
        assert "value" not in outcome and "error" not in outcome
    thread.join(TIMEOUT_S)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    assert building_models.waiting == 0


def test_a_thread_that_builds_may_build_again_inside():
    with building_models():
        model = base_model()
    assert not any(p.is_meta for p in model.parameters())
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_two_threads_loading_at_once_both_get_whole_models():
    """The failure this section prevents: an untied lm_head left on the meta device."""
    loaded: list = []
    errors: list = []

    def load():
        try:
            loaded.append(base_model())
        except BaseException as error:  # noqa: BLE001 — reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert not errors, errors
    assert len(loaded) == 4
    reference = loaded[0].state_dict()
    for model in loaded[1:]:
        state = model.state_dict()
        assert all(torch.equal(state[name], reference[name]) for name in reference)
