"""Per-instance state: the model, its changelog codec, the packed in-memory form, the store,
its restore from the changelog and local snapshots."""
