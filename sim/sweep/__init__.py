"""Parameter sweeps: the ``sweep:`` section (:mod:`.spec`), executors on a local process
pool or Ray (:mod:`.executors`), hive-partitioned results (:mod:`.results`) and the
driver that ties them together (:mod:`.runner`)."""
