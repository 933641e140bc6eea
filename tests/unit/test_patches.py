"""The changes ZooServe makes inside BentoML and prometheus_client: each one's upstream target is
still the code it was written against, and an untested BentoML is refused or served stock."""

from __future__ import annotations

import inspect
import logging

import bentoml
import pytest
import uvicorn.protocols.http.httptools_impl as httptools_impl

from serving.runtime import patches
from serving.runtime.startup import quiet_uvicorn_access_log


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda patch: patch.name)
def test_each_patch_targets_the_upstream_code_it_was_written_against(patch):
    drifted = patch.drift()
    assert not drifted, (f"{patch.name}: upstream changed {drifted}. Read the new source, decide whether "
                         f"the defect is still there ({patch.defect}); then update or retire the patch "
                         f"(it retires when: {patch.retire_when}) and its digests in serving/runtime/patches.py")


def test_the_pinned_bentoml_is_the_one_the_patches_were_tested_with():
    assert bentoml.__version__ == patches.TESTED_BENTOML, (
        f"BentoML {bentoml.__version__} is installed, the patches were tested with {patches.TESTED_BENTOML}: "
        f"revisit every patch in serving/runtime/patches.py ({', '.join(p.name for p in patches.PATCHES)}), "
        "then move TESTED_BENTOML")


def test_a_digest_notices_a_changed_target(monkeypatch):
    patch = patches.PATCHES[0]
    target = next(iter(patch.targets))
    monkeypatch.setitem(patch.targets, target, "0" * 64)
    assert patch.drift() == [target]


def test_an_untested_bentoml_is_refused_unless_told_to_serve_stock(monkeypatch):
    monkeypatch.setattr(bentoml, "__version__", "9.9.9")
    monkeypatch.delenv(patches.UNTESTED, raising=False)
    with pytest.raises(SystemExit, match="tested with BentoML 1.4.40, and this is BentoML 9.9.9"):
        patches.check()
    monkeypatch.setenv(patches.UNTESTED, "stock")
    assert patches.check() is False  # start-up then applies none of them


def test_the_tested_bentoml_is_patched_unless_the_stock_path_is_asked_for(monkeypatch):
    monkeypatch.delenv(patches.UNTESTED, raising=False)
    assert patches.check() is True
    monkeypatch.setenv(patches.UNTESTED, "stock")
    assert patches.check() is False


def test_uvicorn_logs_no_access_line_once_its_logger_reaches_no_handler():
    # uvicorn decides per connection whether to call its access logger from this, and nothing else.
    assert "self.access_log = self.access_logger.hasHandlers()" in inspect.getsource(httptools_impl.HttpToolsProtocol)
    access = logging.getLogger("uvicorn.access")
    before = access.propagate
    logging.getLogger().addHandler(handler := logging.NullHandler())  # as BentoML's root handler
    try:
        assert access.hasHandlers()
        quiet_uvicorn_access_log()
        assert not access.hasHandlers()
    finally:
        access.propagate = before
        logging.getLogger().removeHandler(handler)
