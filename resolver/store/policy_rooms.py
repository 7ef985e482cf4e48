"""The policy objects in SQL: profiles, devices, schedules, temporary allows and seen clients (a mixin of
:class:`resolver.store.sqlcommon.SQLStoreBase`, the same statements on SQLite and PostgreSQL)."""
from __future__ import annotations

from typing import Optional, Sequence

from resolver.policy.profiles import Device, Profile, Schedule, SeenClient, TempAllow, check_time
from resolver.store.sqlcommon import (DEVICE_SQL, KIND_LABEL, PROFILE_SQL, SCHEDULE_SQL, TEMP_ALLOW_SQL, Handle,
                                      SQLStoreBase, device_of, is_default, key, need, profile_of, profile_values, row,
                                      schedule_of, schedule_values, temp_allow_of)


def _profile_ref(db: Handle, name: str) -> tuple[int, str]:
    found = row(db, "SELECT id, name FROM profiles WHERE name = ?", key(name))
    if found is None:
        raise ValueError(f"unknown profile {key(name)!r}")
    return found[0], found[1]


def _check_identity(db: Handle, device: Device, own_id: Optional[int]) -> None:
    found = row(db, "SELECT name FROM devices WHERE kind = ? AND value = ? AND id != ?",
                device.kind, device.value, -1 if own_id is None else own_id)
    if found:
        raise ValueError(f"{KIND_LABEL[device.kind]} {device.value} already belongs to device {found[0]!r}")


def _existing_id(db: Handle, what: str, obj_id: Optional[int], by_id: str, by_name: str, *args: object) -> int:
    """The id of the object to update: ``obj_id`` when given (checked), else found by its name."""
    if obj_id is not None:
        found = row(db, by_id, obj_id)
        if found is None:
            raise ValueError(f"unknown {what} id {obj_id}")
    else:
        found = row(db, by_name, *args)
        if found is None:
            raise ValueError(f"unknown {what} {args[-1]!r}")
    return found[0]


class PolicyRooms(SQLStoreBase):
    # -- profiles --------------------------------------------------------------------------------

    def add_profile(self, profile: Profile) -> Profile:
        need(profile, Profile)
        with self._write() as db:
            if row(db, "SELECT id FROM profiles WHERE name = ?", profile.name):
                raise ValueError(f"profile {profile.name!r} already exists")
            pid = db.insert("INSERT INTO profiles (name, preset, categories, services, safe_search, youtube,"
                            " block_mode, block_list, allow_list, bypass_prevention, updated)"
                            " VALUES (?,?,?,?,?,?,?,?,?,?,?)", profile_values(profile))
            return profile_of(row(db, PROFILE_SQL + " WHERE id = ?", pid))

    def update_profile(self, profile: Profile) -> Profile:
        need(profile, Profile)
        with self._write() as db:
            pid = _existing_id(db, "profile", profile.id, "SELECT id FROM profiles WHERE id = ?",
                               "SELECT id FROM profiles WHERE name = ?", profile.name)
            old_name = row(db, "SELECT name FROM profiles WHERE id = ?", pid)[0]
            if is_default(old_name) and not is_default(profile.name):
                raise ValueError("the default profile can't be renamed")
            if row(db, "SELECT id FROM profiles WHERE name = ? AND id != ?", profile.name, pid):
                raise ValueError(f"profile {profile.name!r} already exists")
            db.execute("UPDATE profiles SET name = ?, preset = ?, categories = ?, services = ?, safe_search = ?,"
                       " youtube = ?, block_mode = ?, block_list = ?, allow_list = ?, bypass_prevention = ?,"
                       " updated = ? WHERE id = ?", (*profile_values(profile), pid))
            return profile_of(row(db, PROFILE_SQL + " WHERE id = ?", pid))

    def get_profile(self, name: str) -> Optional[Profile]:
        with self._read() as db:
            found = row(db, PROFILE_SQL + " WHERE name = ?", key(name))
        return profile_of(found) if found else None

    def list_profiles(self) -> list[Profile]:
        with self._read() as db:
            rows = db.execute(PROFILE_SQL + " ORDER BY name, id").fetchall()
        return [profile_of(r) for r in rows]

    def remove_profile(self, name: str) -> None:
        with self._write() as db:
            pid, stored_name = _profile_ref(db, name)
            if is_default(stored_name):
                raise ValueError("the default profile can't be removed")
            users = [r[0] for r in db.execute("SELECT name FROM devices WHERE profile_id = ? ORDER BY name", (pid,))]
            if users:
                raise ValueError(f"profile {stored_name!r} is used by devices {', '.join(users)}: "
                                 "move them to another profile first")
            db.execute("DELETE FROM profiles WHERE id = ?", (pid,))

    # -- devices ---------------------------------------------------------------------------------

    def add_device(self, device: Device) -> Device:
        need(device, Device)
        with self._write() as db:
            if row(db, "SELECT id FROM devices WHERE name = ?", device.name):
                raise ValueError(f"device {device.name!r} already exists")
            pid, _ = _profile_ref(db, device.profile)
            _check_identity(db, device, None)
            did = db.insert("INSERT INTO devices (name, kind, value, profile_id, hostname, first_seen, last_seen,"
                            " paused_until) VALUES (?,?,?,?,?,?,?,?)",
                            (device.name, device.kind, device.value, pid, device.hostname, device.first_seen,
                             device.last_seen, device.paused_until))
            return device_of(row(db, DEVICE_SQL + " WHERE d.id = ?", did))

    def update_device(self, device: Device) -> Device:
        need(device, Device)
        with self._write() as db:
            did = _existing_id(db, "device", device.id, "SELECT id FROM devices WHERE id = ?",
                               "SELECT id FROM devices WHERE name = ?", device.name)
            if row(db, "SELECT id FROM devices WHERE name = ? AND id != ?", device.name, did):
                raise ValueError(f"device {device.name!r} already exists")
            pid, _ = _profile_ref(db, device.profile)
            _check_identity(db, device, did)
            db.execute("UPDATE devices SET name = ?, kind = ?, value = ?, profile_id = ?, hostname = ?,"
                       " paused_until = ? WHERE id = ?",
                       (device.name, device.kind, device.value, pid, device.hostname, device.paused_until, did))
            return device_of(row(db, DEVICE_SQL + " WHERE d.id = ?", did))

    def get_device(self, name: str) -> Optional[Device]:
        with self._read() as db:
            found = row(db, DEVICE_SQL + " WHERE d.name = ?", key(name))
        return device_of(found) if found else None

    def list_devices(self) -> list[Device]:
        with self._read() as db:
            rows = db.execute(DEVICE_SQL + " ORDER BY d.name, d.id").fetchall()
        return [device_of(r) for r in rows]

    def _device_filter(self, search: str, paused_at: Optional[float], values: Optional[Sequence[str]],
                       kind: Optional[str]) -> tuple[str, list]:
        """WHERE clause and arguments for find_devices / count_devices."""
        where: list[str] = []
        args: list = []
        if kind is not None:
            where.append("d.kind = ?")
            args.append(str(kind))
        if values is not None:
            where.append(f"d.value IN ({','.join('?' * len(values))})" if values else "1 = 0")
            args += [str(v) for v in values]
        text = key(search).lower()
        if text:
            columns = ("d.name", "d.value", "d.hostname", "p.name")
            where.append("(" + " OR ".join(self._contains(self._folded(c)) for c in columns) + ")")
            args += [text] * len(columns)
        if paused_at is not None:
            where.append("d.paused_until > ?")
            args.append(float(paused_at))
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def find_devices(self, search: str = "", *, limit: int = 50, offset: int = 0, paused_at: Optional[float] = None,
                     values: Optional[Sequence[str]] = None, kind: Optional[str] = None) -> list[Device]:
        where, args = self._device_filter(search, paused_at, values, kind)
        with self._read() as db:
            rows = db.execute(DEVICE_SQL + where + " ORDER BY d.name, d.id LIMIT ? OFFSET ?",
                              (*args, max(0, int(limit)), max(0, int(offset)))).fetchall()
        return [device_of(r) for r in rows]

    def count_devices(self, search: str = "", *, paused_at: Optional[float] = None,
                      values: Optional[Sequence[str]] = None, kind: Optional[str] = None) -> int:
        where, args = self._device_filter(search, paused_at, values, kind)
        with self._read() as db:
            return int(db.execute("SELECT COUNT(*) FROM devices d JOIN profiles p ON p.id = d.profile_id" + where,
                                  args).fetchone()[0])

    def remove_device(self, name: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM devices WHERE name = ?", (key(name),)).rowcount == 0:
                raise ValueError(f"unknown device {key(name)!r}")

    def set_pause(self, device_name: str, until: Optional[float]) -> None:
        until = check_time(until, "pause until", optional=True)
        with self._write() as db:
            if db.execute("UPDATE devices SET paused_until = ? WHERE name = ?",
                          (until, key(device_name))).rowcount == 0:
                raise ValueError(f"unknown device {key(device_name)!r}")

    # -- schedules -------------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> Schedule:
        need(schedule, Schedule)
        with self._write() as db:
            pid, profile_name = _profile_ref(db, schedule.profile)
            if row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ?", pid, schedule.name):
                raise ValueError(f"schedule {schedule.name!r} already exists in profile {profile_name!r}")
            sid = db.insert("INSERT INTO schedules (profile_id, name, days, start_time, end_time, action, categories,"
                            " services, enabled) VALUES (?,?,?,?,?,?,?,?,?)", (pid, *schedule_values(schedule)))
            return schedule_of(row(db, SCHEDULE_SQL + " WHERE s.id = ?", sid))

    def update_schedule(self, schedule: Schedule) -> Schedule:
        need(schedule, Schedule)
        with self._write() as db:
            pid, profile_name = _profile_ref(db, schedule.profile)
            if schedule.id is not None:
                sid = _existing_id(db, "schedule", schedule.id, "SELECT id FROM schedules WHERE id = ?", "")
            else:
                found = row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ?", pid, schedule.name)
                if found is None:
                    raise ValueError(f"unknown schedule {schedule.name!r} in profile {profile_name!r}")
                sid = found[0]
            if row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ? AND id != ?",
                   pid, schedule.name, sid):
                raise ValueError(f"schedule {schedule.name!r} already exists in profile {profile_name!r}")
            db.execute("UPDATE schedules SET profile_id = ?, name = ?, days = ?, start_time = ?, end_time = ?,"
                       " action = ?, categories = ?, services = ?, enabled = ? WHERE id = ?",
                       (pid, *schedule_values(schedule), sid))
            return schedule_of(row(db, SCHEDULE_SQL + " WHERE s.id = ?", sid))

    def list_schedules(self, profile: Optional[str] = None) -> list[Schedule]:
        with self._read() as db:
            if profile is None:
                rows = db.execute(SCHEDULE_SQL + " ORDER BY p.name, s.name, s.id").fetchall()
            else:
                pid, _ = _profile_ref(db, profile)
                rows = db.execute(SCHEDULE_SQL + " WHERE s.profile_id = ? ORDER BY s.name, s.id", (pid,)).fetchall()
        return [schedule_of(r) for r in rows]

    def remove_schedule(self, profile: str, name: str) -> None:
        with self._write() as db:
            pid, profile_name = _profile_ref(db, profile)
            if db.execute("DELETE FROM schedules WHERE profile_id = ? AND name = ?", (pid, key(name))).rowcount == 0:
                raise ValueError(f"unknown schedule {key(name)!r} in profile {profile_name!r}")

    # -- temporary allows ------------------------------------------------------------------------

    def add_temp_allow(self, allow: TempAllow) -> TempAllow:
        need(allow, TempAllow)
        with self._write() as db:
            dev = row(db, "SELECT id FROM devices WHERE name = ?", allow.device)
            if dev is None:
                raise ValueError(f"unknown device {allow.device!r}")
            existing = row(db, "SELECT id FROM temp_allows WHERE device_id = ? AND domain = ?", dev[0], allow.domain)
            if existing:
                tid = existing[0]
                db.execute("UPDATE temp_allows SET until = ? WHERE id = ?", (allow.until, tid))
            else:
                tid = db.insert("INSERT INTO temp_allows (device_id, domain, until) VALUES (?,?,?)",
                                (dev[0], allow.domain, allow.until))
            return temp_allow_of(row(db, TEMP_ALLOW_SQL + " WHERE t.id = ?", tid))

    def list_temp_allows(self, now: float) -> list[TempAllow]:
        with self._read() as db:
            rows = db.execute(TEMP_ALLOW_SQL + " WHERE t.until > ? ORDER BY t.until, t.id", (now,)).fetchall()
        return [temp_allow_of(r) for r in rows]

    def remove_temp_allow(self, allow_id: int) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM temp_allows WHERE id = ?", (int(allow_id),)).rowcount == 0:
                raise ValueError(f"unknown temporary allow {allow_id!r}")

    def purge_temp_allows(self, now: float) -> int:
        with self._write(bump=False) as db:
            count = db.execute("DELETE FROM temp_allows WHERE until <= ?", (now,)).rowcount
            if count:
                self._bump(db)
        return count

    # -- seen clients ----------------------------------------------------------------------------

    def touch_seen(self, address: str, mac: str, hostname: str, now: float) -> None:
        seen = SeenClient(address, mac or "", hostname or "", now, now)
        with self._write(bump=False) as db:
            if db.execute("UPDATE seen_clients SET last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END,"
                          " mac = CASE WHEN ? != '' THEN ? ELSE mac END,"
                          " hostname = CASE WHEN ? != '' THEN ? ELSE hostname END WHERE address = ?",
                          (seen.last_seen, seen.last_seen, seen.mac, seen.mac, seen.hostname, seen.hostname,
                           seen.address)).rowcount == 0:
                db.execute("INSERT INTO seen_clients (address, mac, hostname, first_seen, last_seen)"
                           " VALUES (?,?,?,?,?) ON CONFLICT (address) DO NOTHING",
                           (seen.address, seen.mac, seen.hostname, seen.first_seen, seen.last_seen))
            db.execute("UPDATE devices SET last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END,"
                       " first_seen = CASE WHEN first_seen = 0 THEN ? ELSE first_seen END,"
                       " hostname = CASE WHEN ? != '' THEN ? ELSE hostname END"
                       " WHERE (kind = 'ip' AND value = ?) OR (kind = 'mac' AND value = ?)",
                       (seen.last_seen, seen.last_seen, seen.first_seen, seen.hostname, seen.hostname, seen.address,
                        seen.mac))

    def list_seen(self, limit: int = 200) -> list[SeenClient]:
        with self._read() as db:
            rows = db.execute("SELECT address, mac, hostname, first_seen, last_seen FROM seen_clients"
                              " ORDER BY first_seen DESC, address LIMIT ?", (int(limit),)).fetchall()
        return [SeenClient(*r) for r in rows]
