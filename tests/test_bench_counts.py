"""bench/engine_counts.py counts what a bench case does: checked on a few cases, where it is known."""

from __future__ import annotations

import pytest

from bench.engine_counts import counts
from bench.page_reads import CounterUnavailable, page_reads


def test_each_case_more_opens_one_file_per_message_and_commits_each_record_once() -> None:
    few, more = counts(3), counts(6)

    def each_more(name: str) -> float:
        """What each of the three cases more added: the home's set-up (templates read, tables made)
        is paid once and drops out."""
        return (more[name] * 6 - few[name] * 3) / 3

    # Each case sends two e-mails and posts two cards; the outbox opens one file for each message.
    assert round(each_more("file_opens"), 6) == 4.0
    # Every action's record is committed before the next starts: each of a case's 13 records in a
    # transaction of its own (a run's start goes with its first, its end and the acknowledgement of
    # its message with its last, an emitted event with its action's), so 13 at least.
    assert each_more("transactions") >= 13.0 and each_more("sql") >= each_more("transactions")
    assert each_more("transactions") >= each_more("commits")
    # And no more than the records' 13 and the connectors' own 7 (a case saved twice, four outbox
    # messages journaled, one inventory write): a run's start and end, and the events, add none.
    assert round(each_more("transactions"), 6) <= 20.0


def test_with_another_worker_an_action_s_record_and_a_run_s_key_read_only_their_own_b_trees() -> None:
    """bench/page_reads.py counts the pages SQLite reads again because another worker committed
    between this one's transactions (alone, a small home stays in SQLite's cache: none)."""
    try:
        alone, shared = page_reads(3, another_writer=False), page_reads(3)
    except CounterUnavailable as unavailable:  # another build of Python or SQLite than CI's image
        pytest.skip(f"SQLite's page counter cannot be read here: {unavailable}")
    assert alone.total == 0 and shared.total > 100

    def each(start: str) -> float:
        (statement,) = (statement for statement in shared.by_statement if statement.startswith(start))
        return shared.by_statement[statement] / shared.executions[statement]

    # A record reads run_actions' B-tree and its key's, a level a page: no other table's (a foreign
    # key read the run's key in runs' index too); a key added, its own two one-page B-trees.
    depths = shared.depths
    assert each("INSERT INTO run_actions") <= depths["run_actions"] + depths["sqlite_autoindex_run_actions_1"]
    assert each("INSERT OR IGNORE INTO run_keys") <= depths["run_keys"] + depths["run_keys_by_key"]
