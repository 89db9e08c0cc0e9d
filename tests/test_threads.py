"""kd_utils' CPU thread setting: chosen on purpose, overridable, and never leaked."""
import pytest
import torch

from kd_utils import training


def test_kd_threads_overrides_the_default(monkeypatch):
    monkeypatch.setenv("KD_THREADS", "3")
    assert training.cpu_threads() == 3


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_kd_threads_says_what_is_allowed(monkeypatch, bad):
    monkeypatch.setenv("KD_THREADS", bad)
    with pytest.raises(ValueError, match="KD_THREADS must be a positive integer"):
        training.cpu_threads()


def test_predict_uses_kd_threads_and_restores_the_callers_setting(monkeypatch):
    monkeypatch.setenv("KD_THREADS", "1")
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x.float().flatten(1)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        training.predict(Probe(), torch.zeros(600, 1, 2, 2, dtype=torch.uint8))
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_predict_in_cpu_chunks_gives_the_same_logits_as_one_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.randn(700, 1, 4, 4)
    assert torch.allclose(training.predict(model, x, batch_size=1024), model(x), atol=1e-6)
