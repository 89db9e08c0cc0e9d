"""What only a CUDA GPU can check (`make gpu-check` runs these with `pytest -m gpu`; CI and
a CPU-only machine skip them): the GPU's default configuration, and the older GPUs' fp16
with its gradient scaler, train, resume and evaluate on the device, and the device computes
what the CPU computes."""
import math

import pytest
import torch

import kd_utils as kd
import kd_utils.runs as kd_runs
from kd_testdata import count_calls, toy_data, toy_settings, toy_teacher
from kd_utils.storage import load_torch
from test_training import distill_in

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


@pytest.fixture
def exact_fp32():
    """No TF32 in matrix products and convolutions, so the GPU's fp32 is comparable to the CPU's."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_distillation_loss_on_the_gpu_is_the_cpu_loss():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(256, 10, generator=g) * 3, torch.randn(256, 10, generator=g) * 3
    labels = torch.randint(0, 10, (256,), generator=g)
    for T, alpha, formulation in [(1.0, 0.0, "hinton"), (4.0, 0.5, "hinton"), (20.0, 1.0, "hinton"),
                                  (4.0, 0.5, "blended")]:
        loss = kd.DistillationLoss(T, alpha, formulation)
        cpu = loss(student, teacher, labels)
        gpu = loss(student.to(CUDA), teacher.to(CUDA), labels.to(CUDA))
        assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6), (T, alpha, formulation)


def test_a_student_predicts_on_the_gpu_what_it_predicts_on_the_cpu(exact_fp32):
    data = toy_data()
    torch.manual_seed(0)
    model = kd.make_student(data)
    cpu = kd.predict(model, data.x_test)
    gpu = kd.predict(model.to(CUDA), data.x_test.to(CUDA))
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


@pytest.mark.parametrize("precision", ["default", "fp16"])
def test_the_gpu_configuration_trains_resumes_and_evaluates_on_cuda(tmp_path, monkeypatch, precision):
    """Online teacher on augmented device batches, autocast (the default: bf16 on compute
    capability 8.0 and newer; fp16 with its gradient scaler, the default of older GPUs,
    forced), three students in lockstep; stopped mid-run and resumed; the students learn
    and their files are complete."""
    default = kd.settings(dataset="fashion-mnist", device="cuda", verbose=False)
    assert default.teacher_mode == "online"  # (augmentation: 32x32 colour images only)
    assert default.precision == ("bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp16")
    data = toy_data().to(CUDA)  # as kd.load_data(s) gives it: on the settings' device
    s = toy_settings(teacher_mode="online", augment=True, device=CUDA, epochs=4,
                     precision=default.precision if precision == "default" else precision)
    teacher = toy_teacher(data)
    teacher.model.to(CUDA)

    calls = count_calls(monkeypatch, kd_runs, "save_checkpoint", fail_on=3 + 3 + 2)  # in epoch 3
    with pytest.raises(KeyboardInterrupt):
        distill_in(tmp_path, s, data, teacher)
    calls.update(fail_on=None)
    resumed = distill_in(tmp_path, s, data, teacher)
    for alpha, student in resumed.items():
        assert next(student.model.parameters()).is_cuda, alpha
        saved = load_torch(student.folder / "run.pt")
        assert len(saved["history"]) == 4 and all(math.isfinite(e["loss"]) for e in saved["history"]), alpha
        assert saved["finished"] and saved["optimizer"] is None, alpha
    rows = kd.evaluate(s, data, teacher, resumed)
    assert max(r["accuracy"] for r in rows[1:]) > 0.5  # chance is 0.25
