"""What `tmf-events topics` and `run` create (processor/topics.py): the event topics keep
events_retention_ms, the changelog is compacted, the others get the broker's defaults."""

from __future__ import annotations

from processor.config import Settings
from processor.topics import plan_topics


def test_only_the_event_topics_get_the_events_retention() -> None:
    settings = Settings(instance_id="t", app_id="inv", events_retention_ms=-1)
    plans = {p.name: p for p in plan_topics(settings, 12)}
    assert set(plans) == {
        "inventory.changes",
        "tmf.service.events",
        "tmf.resource.events",
        "inv-state-changelog",
        "inv-dlq",
    }
    assert all(p.partitions == 12 for p in plans.values())
    for name in ("tmf.service.events", "tmf.resource.events"):
        assert plans[name].config == {"retention.ms": "-1"}
    assert plans["inv-state-changelog"].config == {"cleanup.policy": "compact"}
    assert plans["inventory.changes"].config == plans["inv-dlq"].config == {}
    default = {p.name: p for p in plan_topics(Settings(instance_id="t"), 1)}
    assert default["tmf.service.events"].config == {"retention.ms": str(365 * 86_400_000)}
