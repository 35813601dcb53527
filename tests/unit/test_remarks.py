"""Remarks (contract.md §5): their prefixes, the attempt count they carry, and their size."""

from dlsupervisor import outcomes, remarks
from dlsupervisor.store import Tally


def test_attempts_are_carried_from_claim_to_requeue_and_the_third_requeue_gives_up():
    remark = None
    seen = []
    for _ in range(3):
        token = remarks.claim_token("host", 42, remarks.next_attempt(remark))
        status, remark = remarks.requeue_outcome(token, "owner lost")
        seen.append((status, remark))
    assert seen[0] == (0, "requeued: owner lost (attempt 1 of 3)")
    assert seen[1] == (0, "requeued: owner lost (attempt 2 of 3)")
    assert seen[2] == (-1, "gave up: owner lost (requeued 3 times)")


def test_a_stuck_item_with_no_token_counts_as_one_attempt():
    assert remarks.requeue_outcome("", "owner lost") == (0, "requeued: owner lost (attempt 1 of 3)")


def test_every_remark_fits_the_column():
    text = remarks.error_text(remarks.EXPORT_FAILED, RuntimeError("é" * 1000))
    assert len(text) == 256 and text.startswith("export failed: RuntimeError: éé")
    assert len(remarks.claim_token("h" * 300, 2**22, 3)) <= 256


def test_roll_up_decisions():
    assert outcomes.decide_task(Tally(1, 3, 2, 1, 0, "x")) == (1, 2, "2 of 3 files ready, 1 failed")
    assert outcomes.decide_task(Tally(1, 2, 2, 0, 0, None)) == (1, 2, None)
    assert outcomes.decide_task(Tally(1, 1, 0, 1, 0, "export failed: E: m")) == (1, -1, "export failed: E: m")
    assert outcomes.decide_task(Tally(1, 2, 0, 2, 0, "e")) == (1, -1, "all 2 files failed; first: e")
    assert outcomes.decide_task(Tally(1, 2, 0, 1, 1, "e"))[1] == 3


def test_progress_is_counted_for_tasks():
    assert outcomes.summarise_counts({2: 3, -1: 1, 1: 1}) == "3/5 done, 1 failed, 1 running"
