"""Scenario 1's rounds as one figure each: medians, ratios taken within a round."""

from __future__ import annotations

from bench.scenarios import _median_round


def side(rate: float, cpu: float, **extra) -> dict:
    return {"tasks_per_s": rate, "cpu_ms_per_task": {"worker": cpu, "sender": cpu / 10}, **extra}


def one_round(raw: float, results: float, hive: float, *, rss: int) -> dict:
    return {
        "raw_celery": {"noop": side(2 * raw, 1.0), "spawn_true": side(raw, 2.0)},
        "celery_results": side(results, 4.0),
        "hive": side(hive, hive / 10, submit_per_s=4 * hive, worker_memory={"rss_mb": rss}),
    }


def test_rounds_report_medians_and_within_round_ratios():
    # the machine slows down in round 2: every side halves, the ratios hold
    rounds = [
        one_round(600, 300, 150, rss=230),
        one_round(300, 150, 75, rss=231),
        one_round(580, 290, 200, rss=232),
    ]

    merged = _median_round(rounds)

    assert merged["hive"]["tasks_per_s"] == 150 and merged["hive"]["per_round"]["tasks_per_s"] == [150, 75, 200]
    assert merged["hive"]["submit_per_s"] == 600
    assert merged["raw_celery"]["spawn_true"]["tasks_per_s"] == 580
    assert merged["hive"]["cpu_ms_per_task"] == {"worker": 15.0, "sender": 1.5}
    # hive ÷ peer per round: 0.5, 0.5, 0.69 -> 0.5; across medians it would be 150/290 = 0.517
    assert merged["ratio_to_celery_results"] == 0.5
    assert merged["per_round"]["ratio_to_celery_results"] == [0.5, 0.5, 0.69]
    assert merged["ratio_to_raw_spawn"] == 0.25
    # the details come from the round with the median ratio, not a mix
    assert merged["hive"]["worker_memory"] == {"rss_mb": 231}
    assert rounds[1]["hive"]["tasks_per_s"] == 75  # the rounds themselves are left as they were


def test_one_round_is_that_round():
    only = one_round(500, 250, 100, rss=200)
    merged = _median_round([only])
    assert merged["hive"]["tasks_per_s"] == 100 and merged["ratio_to_celery_results"] == 0.4
