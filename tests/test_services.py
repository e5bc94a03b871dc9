"""gateway.services beyond the wiring the API tests exercise."""

from __future__ import annotations

import gc

from gateway.services import SERVING_GC_THRESHOLDS, freeze_start_up_heap


def test_start_up_s_heap_is_frozen_out_of_later_collections() -> None:
    """``gatewayctl serve`` calls it once its state is loaded: a full collection then skips those objects."""
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    survivor = [object()]  # tracked: a list
    try:
        freeze_start_up_heap()
        assert gc.get_freeze_count() > before
        assert not any(o is survivor for o in gc.get_objects())  # frozen objects are in no generation
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS  # then the young generation sized for serving
    finally:
        gc.unfreeze()  # the test process goes on making and dropping apps
        gc.set_threshold(*thresholds)
    assert any(o is survivor for o in gc.get_objects())
