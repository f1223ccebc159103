"""The torch target: ``backend`` renders a Program into ``<name>_torch.py`` (two custom operators
whose backward passes are the derived formulas, and a ``Model``); ``runtime`` is the code every
generated module carries verbatim; ``loader`` generates and imports it, and drives it behind the
NumPy module's functions for ``symbackprop train --target torch`` and ``check``.

Only ``loader`` and ``runtime`` import torch; generating the target does not need it.
"""
