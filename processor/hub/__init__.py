"""The TMF notification hub (`tmf-events hub`): REST listeners get the events the TM Forum
way.

Listeners register with `POST .../hub {callback, query}` (routes.py); every event of the
output topics that matches a subscription's query (query.py) is POSTed to
`{callback}/listener/{eventName}` with the Kafka value as body and the CloudEvents
attributes as `ce-*` headers (delivery.py), at least once and in order per subject, each
subscription on its own (worker.py), retried with backoff and paused when failing for long
(retry.py). Only safe callbacks are called (callbacks.py). Subscriptions and positions live
in a compacted Kafka topic (model.py, store.py); replicas split the output partitions
through a consumer group (dispatch.py). service.py puts it together.
"""
