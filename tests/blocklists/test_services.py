"""Blocked-services catalogue: the bundled JSON, its conversion from AdGuard Home's table, the runtime API."""
from __future__ import annotations

import dataclasses
import json

import pytest

from blocklists import services as svc_mod
from blocklists.services import (HEARTH_EXTRA_DOMAINS, HEARTH_SERVICES, REQUIRED_SERVICES, SERVICES_JSON, Service,
                                 build_catalogue, convert_adguard, dumps_catalogue, load_services, service_ids,
                                 services_table, validate_service_ids)
from resolver.base.names import normalise_name


@pytest.fixture(scope="module")
def adguard_file(test_data):
    return test_data / "services" / "blocked_services.json"


def covers(service: Service, name: str) -> bool:
    """Would blocking ``service`` block ``name``?"""
    for domain, sub in service.domains:
        if name == domain or (sub and name.endswith("." + domain)):
            return True
    return False


def test_bundled_json_is_the_conversion_plus_hearth_additions(adguard_file):
    bundled = json.loads(SERVICES_JSON.read_text(encoding="utf-8"))
    built = build_catalogue(adguard_file)
    assert bundled == built, "regenerate with: python -m blocklists.services " + str(adguard_file)
    assert SERVICES_JSON.read_text(encoding="utf-8") == dumps_catalogue(built)


def test_conversion_keeps_every_adguard_service_and_accounts_for_every_rule(adguard_file):
    src = json.loads(adguard_file.read_text(encoding="utf-8"))
    cat = convert_adguard(adguard_file)
    assert [s["id"] for s in cat["services"]] == sorted(s["id"] for s in src["services"])
    assert all(s["source"] == "adguard" for s in cat["services"])
    assert cat["skipped_count"] == len(cat["skipped"]) > 0
    skipped = {(s["service"], s["rule"]) for s in cat["skipped"]}
    by_id = {s["id"]: s for s in cat["services"]}
    for s in src["services"]:
        names = {d["name"] for d in by_id[s["id"]]["domains"]}
        for rule in s["rules"]:
            if (s["id"], rule) in skipped:
                continue
            host = rule.lstrip("|").split("^")[0].split("$")[0].strip().lower()
            assert host in names, (s["id"], rule)
    reasons = {s["rule"]: s["reason"] for s in cat["skipped"]}
    assert reasons["||v*.tiktokcdn-eu.com^"] == "wildcard"
    assert reasons["||amazonaws.com^$dnstype=~CNAME"] == "modifier:dnstype"
    assert reasons["||slack-files.com ^"] == "invalid"
    # "$dnsrewrite=NXDOMAIN;;" means "block": kept, and listed
    relay = {d["name"] for d in by_id["icloud_private_relay"]["domains"]}
    assert {"mask.icloud.com", "mask-h2.icloud.com"} <= relay
    assert len(cat["converted"]) == 3


def test_catalogue_size_and_sources():
    services = load_services()
    assert len(services) >= 100
    assert service_ids() == sorted(services)
    hearth = {s.id for s in services.values() if s.source == "hearth"}
    assert {"zalo", "fortnite"} <= hearth
    assert {s["id"] for s in HEARTH_SERVICES} - {"zalo", "fortnite", "garena"} == set()
    for sid in REQUIRED_SERVICES:
        assert sid in services, sid
        assert services[sid].domains, sid
    assert set(HEARTH_EXTRA_DOMAINS) <= set(services)
    groups = set(json.loads(SERVICES_JSON.read_text(encoding="utf-8"))["groups"])
    assert {s.group for s in services.values()} <= groups


@pytest.mark.parametrize("sid, names, not_names", [
    ("tiktok", ["tiktok.com", "www.tiktok.com", "v16m.tiktokcdn.com", "api.tiktokv.com", "x.tiktokcdn-eu.com"],
     ["tiktok.com.example"]),
    ("youtube", ["youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "rr1---sn-abc.googlevideo.com",
                 "i.ytimg.com", "youtubei.googleapis.com"], ["google.com", "www.google.com"]),
    ("facebook", ["facebook.com", "www.facebook.com", "static.xx.fbcdn.net", "messenger.com"], ["instagram.com"]),
    ("instagram", ["instagram.com", "www.instagram.com", "scontent.cdninstagram.com"], ["facebook.com"]),
    ("roblox", ["roblox.com", "www.roblox.com", "tr.rbxcdn.com"], []),
    ("discord", ["discord.com", "discord.gg", "cdn.discordapp.com", "media.discordapp.net"], []),
    ("fortnite", ["fortnite.com", "www.fortnite.com", "fortnite-public-service-prod11.ol.epicgames.com"], []),
    ("minecraft", ["minecraft.net", "www.minecraft.net", "session.minecraft.net", "mojang.com"], []),
    ("telegram", ["telegram.org", "web.telegram.org", "t.me", "telegram.me"], []),
    ("zalo", ["zalo.me", "chat.zalo.me", "zalo.vn", "zaloapp.com", "s120-ava-talk.zadn.vn", "zdn.vn"], ["zalo.com.vn"]),
])
def test_named_services_cover_their_main_domains(sid, names, not_names):
    service = load_services()[sid]
    for name in names:
        assert covers(service, name), (sid, name)
    for name in not_names:
        assert not covers(service, name), (sid, name)


def test_every_domain_is_normalised_and_unique():
    for service in load_services().values():
        seen = set()
        for name, sub in service.domains:
            assert normalise_name(name) == name, (service.id, name)
            assert isinstance(sub, bool)
            assert name not in seen, (service.id, name)
            seen.add(name)


def test_service_is_frozen_and_load_is_cached():
    a, b = load_services(), load_services()
    assert a == b and a is not b             # a fresh dict each time ...
    assert a["tiktok"] is b["tiktok"]        # ... of the same, cached services
    with pytest.raises(dataclasses.FrozenInstanceError):
        a["tiktok"].name = "x"  # type: ignore[misc]
    a.pop("tiktok")
    assert "tiktok" in load_services()


def test_validate_service_ids():
    assert validate_service_ids(["tiktok", " YouTube ", "tiktok", "zalo"]) == ("tiktok", "youtube", "zalo")
    assert validate_service_ids([]) == ()
    assert validate_service_ids("roblox") == ("roblox",)
    with pytest.raises(ValueError) as exc:
        validate_service_ids(["tiktok", "tiktk"])
    msg = str(exc.value)
    assert msg.startswith("unknown service 'tiktk' (see `hearth services list`)")
    assert "did you mean 'tiktok'" in msg
    with pytest.raises(ValueError, match="did you mean 'youtube'"):
        validate_service_ids(["You Tube"])
    with pytest.raises(ValueError, match="did you mean 'epic_games'"):
        validate_service_ids(["epic-games"])
    with pytest.raises(ValueError) as exc:
        validate_service_ids(["no-such-thing-at-all", "qqqqqqq9"])
    assert "unknown service 'no-such-thing-at-all'" in str(exc.value)
    assert "unknown service 'qqqqqqq9'" in str(exc.value)
    assert "did you mean" not in str(exc.value)
    with pytest.raises(ValueError):
        validate_service_ids([3])  # type: ignore[list-item]


def test_services_table():
    table = services_table()
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "NAME", "GROUP", "DOMAINS"]
    assert len(lines) == len(load_services()) + 2
    zalo = next(line for line in lines if line.startswith("zalo "))
    assert "Zalo" in zalo and "messenger" in zalo
    assert "from AdGuard Home" in lines[-1]


def test_write_catalogue_round_trip(adguard_file, tmp_path):
    out = tmp_path / "services.json"
    cat = svc_mod.write_catalogue(adguard_file, out)
    assert json.loads(out.read_text(encoding="utf-8")) == cat
    assert svc_mod.main([str(adguard_file), str(tmp_path / "x.json")]) == 0
    assert svc_mod.main([]) == 2


def test_licence_file_is_bundled():
    text = (SERVICES_JSON.parent / "services-LICENSE.txt").read_text(encoding="utf-8")
    assert "AdGuard Home" in text.splitlines()[0]
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
