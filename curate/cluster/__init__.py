"""Work beyond one machine: shards of `curate score`, `curate generate` and `curate eval` on a Ray
cluster (`ray.py`), the driver alone writing the store. Ray is an optional extra (`curate[ray]`)."""
