"""Lesson 00, "Your turn": read a confusion matrix (rows: true class, columns: predicted).

Check with ``tlearn.exercises.l00.check_confusion_reading(per_class_recall, sink_class)``.
"""

import numpy as np


def per_class_recall(cm):
    """Recall of class i: the fraction of its examples predicted as i (diagonal / row sum)."""
    cm = np.asarray(cm, dtype=float)
    return np.diag(cm) / cm.sum(axis=1)


def sink_class(cm):
    """The class that receives the most *wrong* predictions: column sum minus diagonal."""
    cm = np.asarray(cm)
    wrong_received = cm.sum(axis=0) - np.diag(cm)
    return int(wrong_received.argmax())
