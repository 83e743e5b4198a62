"""Coalescing within one gateway process: SharedAnswers (identical L1 misses)."""

import asyncio

from services.cache_gateway.single_flight import SharedAnswers


async def test_shared_answers_join_one_computation_and_a_failed_leader_leaves_each_waiter_its_own():
    """SharedAnswers: concurrent computations of one key run once; when the first fails, each waiter computes its own
    (and raises its own error), and nothing stays registered."""
    answers = SharedAnswers()
    runs = []

    async def compute(value, fail=False):
        runs.append(value)
        await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError(f"failed {value}")
        return value

    got = await asyncio.gather(*(answers.run("k", lambda i=i: compute(i)) for i in range(5)))
    assert runs == [0] and got == [(0, False)] + [(0, True)] * 4 and len(answers) == 0
    runs.clear()
    got = await asyncio.gather(answers.run("k", lambda: compute("leader", fail=True)),
                               *(answers.run("k", lambda i=i: compute(i)) for i in range(3)), return_exceptions=True)
    assert isinstance(got[0], RuntimeError) and got[1:] == [(0, False), (1, False), (2, False)]
    assert runs == ["leader", 0, 1, 2] and len(answers) == 0
