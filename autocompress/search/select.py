"""Find the trial a user means: `best`, `knee` or a trial number, in a stored study."""

from __future__ import annotations

from ..engine.errors import ConfigError
from .storage import open_existing_study


def trial_for_pick(study_name: str, storage: str, pick: str):
    import optuna

    from .report import RECOMMENDED_ATTR, build_report

    study = open_existing_study(study_name, storage)
    stored = study.user_attrs.get(RECOMMENDED_ATTR) or {}
    if pick == "best" and stored.get("trial") is not None:  # the last report's pick, confirmed side by side
        number = int(stored["trial"])
    elif pick in ("best", "knee"):
        rep = build_report(study, remeasure=False)  # no report yet: the pick the search's constraints give
        point = rep.best if pick == "best" else rep.knee
        if point is None:
            raise ConfigError(f"study '{study_name}' has no completed trial within its budget to pick as '{pick}'; "
                              "pass a trial number instead")
        number = point.key
    else:
        try:
            number = int(pick)
        except ValueError:
            raise ConfigError(f"--pick {pick!r}: use best, knee or a trial number") from None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"study '{study_name}' has no trial {number} (it has {len(trials)} trials)")
    trial = trials[number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise ConfigError(f"trial {number} of study '{study_name}' is {trial.state.name}, not complete: nothing to export")
    if "folder" not in trial.user_attrs:
        raise ConfigError(f"trial {number} has no stored model folder")
    return trial
