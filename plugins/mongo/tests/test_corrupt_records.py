"""One corrupt or foreign document never makes the history unreadable (issue 15, item 18), and
reading an unknown experiment creates nothing (item 13).

Documents are damaged or added directly in the collection, as another client sharing the
database could; the other trials load and each bad one is reported once, by trial id, as a WARNING
(the trials and the check are :mod:`daskperiment.testing.faults`'s, shared with the other backends).
"""

from __future__ import annotations

import logging

import daskperiment
from daskperiment.testing.faults import check_reported_once, doubling_experiment


def test_malformed_documents_are_reported_once_and_the_rest_loads(mongo_uri, raw_collection, caplog):
    ex, run = doubling_experiment(mongo_uri, [1, 2, 3, 4])
    raw = raw_collection("corrupt")
    raw.update_one({"_id": "trial:2"}, {"$set": {"parameters": {"%float": "not a number"}}})
    raw.insert_one({"_id": "outcome:3:x", "category": "outcome", "trial_id": 3, "seq": "latest", "success": 1})
    raw.insert_one({"_id": "foreign", "category": "trial", "trial_id": "seven", "note": "another tool's"})
    raw.update_one({"_id": "trial:4"}, {"$set": {"seed": "s", "started": "yesterday"}})
    caplog.set_level(logging.WARNING, logger="daskperiment")
    history = ex.get_history(verbose=True)
    assert list(history.index) == [1, 2, 3, 4]
    assert history["Result"].tolist() == [2, 4, 6, 8] and history["a"].tolist()[2:] == [3, 4]
    assert history["Seed"].isna().tolist() == [False, False, False, True]  # "s" is no seed: shown as missing
    ex.get_history(verbose=True)
    assert ex.get_parameters(trial_id=2) == {} and ex.get_result(3) == 6
    check_reported_once(caplog, {2: "parameters cannot be decoded", 3: "an outcome document has no integer seq",
                                 "seven": "a trial document has no integer trial_id", 4: "seed holds str"})
    assert ex.trial_id == 4
    assert run(4) == 8 and ex.trial_id == 5  # the next id follows the integer ids


def test_reading_an_unknown_experiment_creates_nothing(mongo_uri, mongo_database):
    ex = daskperiment.Experiment("nobody", backend=mongo_uri)
    assert ex.trial_id == 0 and ex.get_history().empty and ex.backend.metric_keys() == []
    assert ex.backend.load_persisted("step", 1) is None
    assert "nobody" not in mongo_database.list_collection_names()
