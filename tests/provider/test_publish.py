"""A publish that fails half way (disk full, killed after the lists are written) leaves the previous signed
version served intact and records nothing; the next publish succeeds."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from blocklists import feed as feedlib
from blocklists.verify import verify_feed
from provider import publish as publib
from provider.config import ProviderConfig
from provider.db import Database
from provider.models import FeedVersion
from provider.orders import add_order


def test_failed_publish_keeps_the_previous_version(tmp_path, database, monkeypatch):
    cfg = ProviderConfig(data_dir=str(tmp_path / "data"), database=database)
    db = Database(cfg.database_url)
    key = publib.ensure_key(cfg.data_dir)
    with db.session() as s:
        add_order(s, {"authority": "A", "reference": "1", "category": "gambling", "domains": ["one.example"]}, "t")
        assert publib.publish(s, cfg.data_dir, "t", "t")["version"] == 1
    with db.session() as s:
        add_order(s, {"authority": "A", "reference": "2", "category": "adult", "domains": ["two.example"]}, "t")
    real = feedlib.atomic_write

    def disk_full(path, data, mode=0o644):
        if path.endswith(feedlib.SIGNATURE_NAME):
            raise feedlib.FeedError(f"cannot write {path}: No space left on device")
        return real(path, data, mode)

    monkeypatch.setattr(feedlib, "atomic_write", disk_full)
    with pytest.raises(publib.PublishError, match="No space left"):
        with db.session() as s:
            publib.publish(s, cfg.data_dir, "t", "t")
    manifest = verify_feed(publib.feed_dir(cfg.data_dir), feedlib.load_public_key(key))
    assert manifest["version"] == 1 and [e["id"] for e in manifest["lists"]] == ["order-1"]
    with db.session() as s:
        assert s.scalars(select(FeedVersion.version)).all() == [1]
    monkeypatch.setattr(feedlib, "atomic_write", real)
    with db.session() as s:
        assert publib.publish(s, cfg.data_dir, "t", "t")["version"] == 2
    manifest = verify_feed(publib.feed_dir(cfg.data_dir), feedlib.load_public_key(key))
    assert manifest["version"] == 2 and len(manifest["lists"]) == 2
    db.close()
