"""Denoising traces: what the network saw and predicted at every call of a sampler.

* ``record``  ``TraceRecorder`` (pass as ``sample(..., trace=)``), ``read_trace``
* ``live``    ``LiveView``: the sequence redrawn in the terminal as it refines (rich)
* ``render``  a trace as an animated GIF, a confidence heat-map PNG and an HTML page
"""

from dslm.trace.record import (CallView, Tee, TraceError, TraceObserver, TraceRecorder,
                               read_trace)

__all__ = ["CallView", "Tee", "TraceError", "TraceObserver", "TraceRecorder", "read_trace"]
