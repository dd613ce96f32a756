"""What the daemon's forecasting path leaves out of the process (its idle RSS)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_forecasting_with_the_default_model_does_not_import_numpy_ma() -> None:
    """numpy.ma costs 1.2 MiB of RSS; np.unique without return_inverse would import it."""
    code = (
        "import sys\n"
        "from edge_lstm.model.forecaster import Forecaster\n"
        f"fc = Forecaster.load({str(ROOT / 'models' / 'default.tflite')!r}, max_sensors=4)\n"
        "for t in range(3):\n"
        "    fc.observe_batch({'a': 1.0, 'b': 2.0}, at=1.7e9 + 3600 * t)\n"
        "fc.forecast_batch(['a', 'b'])\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
