"""`--teacher-mode` reaches distill(): it is part of every distilled student's run
key, so an instructor pre-computing runs on a GPU box must be able to choose the
mode the students' CPU notebooks will ask for (docs/instructor_guide.md)."""
import pytest

import kd_utils.experiment as ex
from kd_utils.__main__ import main


@pytest.fixture
def calls(monkeypatch):
    """Replace the experiment's heavy steps by recorders: this tests the plumbing only."""
    seen = {}
    for name in ("KD_DATASET", "KD_PROFILE", "KD_SEED", "KD_TEMPERATURE", "KD_ALPHAS", "KD_TEACHER"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("KD_DEVICE", "cpu")
    monkeypatch.setattr(ex, "load_data", lambda s: "data")
    monkeypatch.setattr(ex, "load_teacher", lambda s, data: "teacher")
    monkeypatch.setattr("kd_utils.teachers.describe_teacher", lambda t: "a stand-in teacher")

    def distill(s, data, teacher, formulation="hinton", teacher_mode=None):
        seen["teacher_mode"] = teacher_mode
        return {}
    monkeypatch.setattr(ex, "distill", distill)
    monkeypatch.setattr(ex, "evaluate", lambda s, data, teacher, students: [])
    monkeypatch.setattr(ex, "save_results", lambda s, rows: "nowhere")
    return seen


@pytest.mark.parametrize("flag, expected", [([], None), (["--teacher-mode", "auto"], None),
                                            (["--teacher-mode", "cached"], "cached"),
                                            (["--teacher-mode", "online"], "online")])
def test_teacher_mode_is_passed_to_distill(calls, flag, expected):
    assert main(["distill", "--dataset", "fashion-mnist", "--profile", "smoke", *flag]) == 0
    assert calls["teacher_mode"] == expected


def test_an_unknown_teacher_mode_is_a_usage_error(calls, capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--teacher-mode", "sometimes"])
    assert "choose from 'auto', 'cached', 'online'" in capsys.readouterr().err
