"""The relay: carries trial events from Ray workers to the driver's observers.

Workers call the ``Relay`` actor; the driver is its only consumer and polls it
(one poll outstanding at a time, so events keep their order). A ``start`` call
waits until the driver has run ``started_event`` on the trial's observers and
answers with the run id they assigned.
"""

from __future__ import annotations

import asyncio

import ray


@ray.remote(num_cpus=0, max_restarts=0)
class Relay:
    def __init__(self):
        self._events: list = []
        self._ready = asyncio.Event()
        self._answers: dict = {}

    async def start(self, token: str, payload: dict):
        future = asyncio.get_running_loop().create_future()
        self._answers[token] = future
        self._push((token, "start", payload))
        return await future

    async def post(self, token: str, kind: str, payload: dict) -> None:
        self._push((token, kind, payload))

    def _push(self, event) -> None:
        self._events.append(event)
        self._ready.set()

    async def poll(self, timeout: float) -> list:
        """Every event queued so far, waiting up to ``timeout`` seconds for the first."""
        if not self._events and timeout > 0:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        self._ready.clear()
        events, self._events = self._events, []
        return events

    async def answer(self, answers: dict) -> None:
        """Resolve waiting ``start`` calls: token -> {"_id": ...} or {"error": ...}."""
        for token, answer in answers.items():
            future = self._answers.pop(token, None)
            if future is not None and not future.done():
                future.set_result(answer)


def start_relay(max_concurrency: int = 1000):
    """A Relay on the driver's own node: losing any other node must not take it down."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return Relay.options(
        max_concurrency=max_concurrency,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote()
