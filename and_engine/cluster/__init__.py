"""``[execution] engine = "ray"``: the heavy stages in Ray Data actors, their results ingested by the driver.

``and_engine.ray_runtime``: the Ray session (started or joined on first use) and ``map_stream``, the one
actor-pool loop; ``activations``, ``captions``, ``encoders``: the same stage functions as the local path,
run per batch in actors; the LLM executor is ``backends.llm_exec_ray``. Workers never write the database
(docs/ray.md).
"""
