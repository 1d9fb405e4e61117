import subprocess
import sys

from tests.conftest import ROOT


def test_ope_knows_nothing_of_networks_or_mlflow():
    code = ("import sys, adrl.ope.workflow, adrl.ope.plots, adrl.ope.estimators, adrl.ope.selection; "
            "print(sorted(m for m in ('torch', 'mlflow', 'pipeline') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
