import torch

from tlearn import exercises


def test_check_accuracy_accepts_right_and_explains_wrong(capsys):
    assert exercises.check_accuracy(lambda lg, y: (lg.argmax(1) == y).float().mean())
    assert "all checks passed" in capsys.readouterr().out
    assert not exercises.check_accuracy(lambda lg, y: (lg.argmax(1) == y).sum())
    assert "divide by the number of examples" in capsys.readouterr().out
    assert not exercises.check_accuracy(lambda lg, y: 100 * (lg.argmax(1) == y).float().mean())
    assert "not a percentage" in capsys.readouterr().out
    assert not exercises.check_accuracy(lambda lg, y: None)
    assert "forget the `return`" in capsys.readouterr().out
    assert not exercises.check_accuracy(lambda lg, y: torch.tensor([1.0, 2.0]).item())
    assert "raised RuntimeError" in capsys.readouterr().out
