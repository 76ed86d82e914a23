"""Studies: the lessons' experiments, computed once and cached on disk.

A *study* is an experiment a lesson reports — many trainings whose numbers a notebook shows
in a table or a plot. Each is built only on tlearn's public core API (``data``, ``models``,
``freeze``, ``train``, ``features``, ``adapt``); the core never imports this package. A
student reads the core to learn the ideas, and reads a study to see how a lesson's numbers
were produced.

Modules (import the one you need; nothing heavy is imported here):

* :mod:`tlearn.studies.source` — the cached source model: a ``DigitNet`` trained on the
  synthetic digits, what every lesson transfers from (``source_model``).
* :mod:`tlearn.studies.finetune` — lesson 01: target accuracy against the number of labels,
  for training from scratch, head-only, full and gradual fine-tuning (``few_shot_curve``).
* :mod:`tlearn.studies.layers` — lesson 02: probe accuracy at each block of a network
  (``layer_sweep``).
* :mod:`tlearn.studies.domains` — the development target domains (``"synth_degraded"``,
  ``"synth_framed"``) on which ``fit_adapt``'s defaults were chosen, registered with
  ``tlearn.data.register_domain``.
* :mod:`tlearn.studies.adaptation` — lessons 03–05: domain-adaptation runs keyed by a
  ``RunConfig`` and cached (``run``, ``comparison``, ``weight_sweep``); their tables and
  figures are in :mod:`tlearn.studies.adaptation_report`, the lessons' claims in
  :mod:`tlearn.studies.adaptation_claims` (both reachable from ``adaptation`` too).
* :mod:`tlearn.studies.self_training` — lesson 08: naive self-training and SHOT from lessons
  03–05's source-only networks (``run``, ``comparison``), confirmation bias measured.
* :mod:`tlearn.studies.choosing` — lesson 06: candidates scored with LEEP and LogME on the few
  labels, then fine-tuned (``comparison``), rank correlation, the decision chart.
* :mod:`tlearn.studies.course` — the numbers lesson 06's chart cites, computed by lessons 01,
  02, 04 and 05's own calls (``course_numbers``), so the chart cannot drift from the lessons.
* :mod:`tlearn.studies.real_images` — lesson 07: frozen features, fine-tuning and training
  from scratch on real photos.
* :mod:`tlearn.studies.validators` — lesson 09: a grid of adaptation runs scored by label-free
  validators (source accuracy, IWCV, DEV, entropy, SND) and graded with the target labels
  (``grid``, ``grade``).
* :mod:`tlearn.studies.warm` — ``tlearn warm``: the lessons' own cached calls, made once
  ahead of time (a teacher's shared cache, Binder's postBuild).
* :mod:`tlearn.studies.claims` — every lesson's claims cell: ``check`` asserts the lesson's
  sentences on its own data and reports them on other data; lessons 00–02 and 06's claims.

Example (``studies.source`` etc. load on first use)::

    from tlearn import studies
    from tlearn.studies import adaptation as ex

    source = studies.source.source_model(seed=0)     # trained once, then loaded from the cache
    print(ex.format_table(ex.comparison(seeds=(0, 1, 2))))
"""

from __future__ import annotations

import importlib

_SUBMODULES = (
    "source",
    "finetune",
    "layers",
    "domains",
    "adaptation",
    "adaptation_report",
    "adaptation_claims",
    "choosing",
    "course",
    "real_images",
    "self_training",
    "validators",
    "warm",
    "claims",
)

__all__ = list(_SUBMODULES)


def __getattr__(name: str):
    """``studies.source`` etc. work after ``from tlearn import studies`` (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"tlearn.studies.{name}")
    raise AttributeError(f"module 'tlearn.studies' has no attribute {name!r}")
