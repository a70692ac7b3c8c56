import optuna
import pytest

from autocompress.engine.errors import ConfigError
from autocompress.search.select import trial_for_pick
from autocompress.search.study import PROTOCOL
from test_report import TEACHER


def test_failed_or_unknown_trials_cannot_be_exported(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize", "minimize"])
    ok = study.ask()
    ok.set_user_attr("folder", str(tmp_path))
    study.tell(ok, [0.9, 1e6, 5.0])
    bad = study.ask()
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    study.set_user_attr("protocol", PROTOCOL)
    study.set_user_attr("teacher", TEACHER)
    assert trial_for_pick("s", storage, "0").number == 0
    assert trial_for_pick("s", storage, "best").number == 0
    with pytest.raises(ConfigError, match="trial 1 of study 's' is FAIL, not complete"):
        trial_for_pick("s", storage, "1")
    with pytest.raises(ConfigError, match="use best, knee or a trial number"):
        trial_for_pick("s", storage, "first")
