"""Regenerate budget-traces.json: per-second DNS query sequences of one phone, modelled on real captures.

A phone's stub resolver caches each answer for its TTL, so a name is asked again only when the app needs
it after the TTL ran out; apps in use touch many names (API, CDN shards, images), apps in the background
poll a few telemetry or presence endpoints. Run: python tests/data/make_budget_traces.py (seeded: stable).
"""
import json
import random
from pathlib import Path

T0 = 1_780_000_000           # a Thursday afternoon (UTC) in 2026
rng = random.Random(18)


def asks(events, t, name, cache, ttl):
    """The phone asks A and AAAA for ``name`` at ``t`` unless its cache still holds it."""
    if cache.get(name, -1) > t:
        return
    cache[name] = t + ttl
    events.append([t, name, 1])
    events.append([t, name, 28])


def roblox_foreground(start, seconds):
    """Roblox open and played: home page, then a game (assets streamed from CDN shards)."""
    events, cache = [], {}
    fg = ["www.roblox.com", "apis.roblox.com", "auth.roblox.com", "users.roblox.com", "thumbnails.roblox.com",
          "games.roblox.com", "catalog.roblox.com", "friends.roblox.com", "avatar.roblox.com",
          "gamejoin.roblox.com", "assetdelivery.roblox.com", "economy.roblox.com"]
    cdn = [f"t{i}.rbxcdn.com" for i in range(8)] + [f"c{i}.rbxcdn.com" for i in range(8)] + ["tr.rbxcdn.com"]
    bg = ["ecsv2.roblox.com", "ephemeralcounters.api.roblox.com", "client-telemetry.roblox.com"]
    for n in fg[:6] + cdn[:5] + bg:                       # start-up burst
        asks(events, start + rng.randint(0, 3), n, cache, 60)
    t = start + 4
    while t < start + seconds:
        for _ in range(rng.randint(1, 3)):                # the app touches a few names every few seconds
            asks(events, t, rng.choice(fg + cdn), cache, rng.choice((30, 60, 60, 120)))
        if rng.random() < 0.1:
            asks(events, t, rng.choice(bg), cache, 300)
        t += rng.randint(4, 12)
    return events


def roblox_background(start, seconds):
    """Roblox left open in the background: telemetry and presence every few minutes, rare API pings."""
    events, cache = [], {}
    t = start
    while t < start + seconds:
        asks(events, t, "ephemeralcounters.api.roblox.com", cache, 300)
        asks(events, t + 1, "ecsv2.roblox.com", cache, 300)
        if rng.random() < 0.5:
            asks(events, t + 2, "presence.roblox.com", cache, 60)
        if rng.random() < 0.3:
            asks(events, t + 3, "apis.roblox.com", cache, 60)   # one API name now and then
        t += rng.randint(240, 360)
    # once in the hour, a notification refresh touches two API names in the same minute
    asks(events, start + 1900, "notifications.roblox.com", cache, 60)
    asks(events, start + 1905, "friends.roblox.com", cache, 60)
    asks(events, start + 1906, "thumbnails.roblox.com", cache, 60)
    return events


def phone_locked(start, seconds):
    """A phone locked overnight: push, connectivity and time checks, an app refresh now and then."""
    events, cache = [], {}
    t = start
    syncs = [["imap.gmail.com", "www.googleapis.com", "oauth2.googleapis.com"],
             ["graph.instagram.com", "i.instagram.com", "scontent.cdninstagram.com"],
             ["api.zalo.me", "chat.zalo.me"],
             ["log.tiktokv.com", "api16-normal-c-useast1a.tiktokv.com"]]
    while t < start + seconds:
        asks(events, t, "mtalk.google.com", cache, 1800)
        asks(events, t + 2, "connectivitycheck.gstatic.com", cache, 300)
        if rng.random() < 0.3:
            asks(events, t + 5, "time.android.com", cache, 3600)
        if rng.random() < 0.35:
            for i, n in enumerate(rng.choice(syncs)):
                asks(events, t + 30 + i, n, cache, 300)
        t += rng.randint(1200, 2400)
    return events


def main():
    traces = [
        {"name": "roblox-foreground-10min", "about": roblox_foreground.__doc__,
         "truth": {"service:roblox": 10, "all": 10},
         "events": roblox_foreground(T0, 600)},
        {"name": "roblox-background-1h", "about": roblox_background.__doc__, "truth": {"service:roblox": 0, "all": 0},
         "events": roblox_background(T0, 3600)},
        {"name": "phone-locked-overnight", "about": phone_locked.__doc__,
         "truth": {"service:roblox": 0, "service:tiktok": 0, "all": 0},
         "events": phone_locked(T0 - 6 * 3600, 8 * 3600)},
    ]
    for tr in traces:
        tr["events"].sort()
    out = Path(__file__).with_name("budget-traces.json")
    out.write_text(json.dumps({"about": __doc__.strip().splitlines()[0], "events": "[seconds, qname, qtype]",
                               "traces": traces}, indent=0) + "\n")


if __name__ == "__main__":
    main()
