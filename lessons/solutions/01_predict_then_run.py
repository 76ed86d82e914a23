"""Lesson 01, "Predict first" (section 9): one prediction that the measured table bears out.

The reasoning, before the run:

* 1 labelled image per class: a randomly initialised network must learn every feature from
  10 images, while the source body already computes strokes and edges. Freezing that body
  (head only) keeps features made for printed fonts; letting it adapt should pay even with one
  image per class. Expect full fine-tuning (or its variants, gradual unfreezing and
  discriminative learning rates, within the seed noise of it) to win.
* 30 labelled images per class: scratch catches up on an easy target, but a pretrained body is
  still a head start within the same 30 steps; head only stays capped by its frozen features.
  Expect full fine-tuning, with scratch close.

In the lesson's run: full fine-tuning 70.7% at 1 label/class (gradual unfreezing and
discriminative LRs within seed noise), and 97.5% at 30 (scratch 96.0%).
"""

from tlearn.exercises import l01

prediction = l01.record_prediction(at_1="full", at_30="full")
