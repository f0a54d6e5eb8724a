"""Online control of early exit on a shifting stream.

* :class:`OnlineController`: an exit policy that holds a mean cost or a label-free
  accuracy-drop target while the stream shifts, learning after each batch
  (:meth:`~OnlineController.observe`, or :meth:`~OnlineController.simulate` from logits).
* :class:`ThresholdFamily` and :class:`DisagreementMap`: the calibrated tables it steers by.
"""

from adanet.calibration.online.controller import OnlineController
from adanet.calibration.online.family import CEILING, DisagreementMap, ThresholdFamily

__all__ = ["CEILING", "DisagreementMap", "OnlineController", "ThresholdFamily"]
