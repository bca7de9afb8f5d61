"""`helpdesk run`'s restart schedule: capped exponential backoff that starts again once a
service has stayed up a while."""

from services.local_run import RestartPolicy, RestartRecord, describe_exit


def test_the_delay_doubles_from_one_second_up_to_thirty() -> None:
    policy = RestartPolicy()
    assert [policy.delay_seconds(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_exits_in_a_row_back_off_and_a_stable_run_starts_the_count_again() -> None:
    record = RestartRecord(RestartPolicy(stable_after_seconds=30))
    record.started(now=0)
    assert record.exited(now=1) == 1
    record.started(now=2)
    assert record.exited(now=3) == 2
    record.started(now=5)
    assert record.exited(now=6) == 4
    assert record.restart_at == 10
    record.started(now=10)
    # Up for 30 s: the next exit is a first one again.
    assert record.exited(now=40) == 1


def test_an_exit_names_its_signal_or_its_code() -> None:
    assert describe_exit(-9) == "signal 9"
    assert describe_exit(3) == "code 3"
