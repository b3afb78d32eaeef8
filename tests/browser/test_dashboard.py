"""The web dashboard in headless Chromium, against the whole system (`cctv up`).

Sign in, create and edit schedules in the editor and watch the node apply
them, see the recording on the timeline and play a segment, trigger a manual
recording, and watch a node that stops answering turn offline, all without
reloading the page: what the operator sees comes from the REST API and the
live stream.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import SECOND_NODE_KEEPALIVE_S, System, save_screenshot, sign_in

SCHEDULE_ID = "browser-continuous"
SEGMENT_TIMEOUT_S = 45
BROKER_CHECK_PERIOD_S = 7  # mosquitto 2.0 checks keepalives when 5 s have passed, per second
# The MIME codec a <video> is asked about for each codec a segment can have.
MIME_CODECS = {"h264": "avc1.42E01E", "hevc": "hvc1.1.6.L93.B0", "mpeg4": "mp4v.20.9",
               "mjpeg": "mjpg"}

pytestmark = pytest.mark.timeout(180)


def node_page(page: Page, system: System) -> None:
    sign_in(page, system, f"#/nodes/{system.node_id}")
    expect(page.locator(f'article[data-camera="{system.camera_id}"]')).to_be_visible()
    # Just after `cctv up` starts, its edge node may still be connecting.
    expect(page.locator("#node-status")).to_have_text("online", timeout=30_000)


def segments(system: System, camera_id: str) -> list[dict[str, Any]]:
    page = system.api.get("/api/recordings", params={"camera_id": camera_id, "limit": 20})
    return [s for r in page.raise_for_status().json()["items"] for s in r["segments"]]


def wait_for_uploaded(system: System, camera_id: str, count: int) -> None:
    deadline = time.monotonic() + SEGMENT_TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(s["upload_state"] == "uploaded" for s in segments(system, camera_id)) >= count:
            return
        time.sleep(0.5)
    pytest.fail(f"{camera_id}: fewer than {count} uploaded segments after {SEGMENT_TIMEOUT_S} s\n"
                f"{system.log_tail('edge')}")


def ensure_recording(system: System) -> None:
    """The continuous schedule the editor test creates, for a test run alone."""
    if system.api.get(f"/api/schedules/{SCHEDULE_ID}").status_code == 404:
        system.api.post("/api/schedules", json={
            "schedule_id": SCHEDULE_ID, "camera_ids": [system.camera_id, system.h264_camera],
            "kind": "continuous", "segment_seconds": 2}).raise_for_status()


def segment_codec(system: System, camera_id: str) -> str:
    events = system.api.get("/api/events", params={
        "node_id": system.node_id, "type": "recording.segment", "limit": 100}).json()["items"]
    codecs = [e["data"]["codec"] for e in events if e["data"]["camera_id"] == camera_id]
    assert codecs, f"no recording.segment event for {camera_id}"
    return str(codecs[0])


def browser_plays(page: Page, codec: str) -> bool:
    mime = f'video/mp4; codecs="{MIME_CODECS.get(codec, codec)}"'
    return bool(page.evaluate("(mime) => document.createElement('video').canPlayType(mime)", mime))


def wait_until_playing(page: Page) -> float:
    page.wait_for_function(
        "() => { const v = document.getElementById('player-video');"
        " return v.readyState >= 2 && v.duration > 0; }", timeout=15_000)
    return float(page.evaluate("document.getElementById('player-video').duration"))


# -- sign-in -------------------------------------------------------------------------


def test_sign_in_refuses_a_wrong_token_and_accepts_the_right_one(
        page: Page, system: System) -> None:
    page.goto(system.url)
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("refused")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('cctv.token')") is None

    page.get_by_label("API token").fill(system.token)
    page.get_by_role("button", name="Sign in").click()
    row = page.locator(f'tr[data-node="{system.node_id}"]')
    expect(row.locator(".status")).to_have_text("online")
    expect(page.locator("#live-state")).to_have_text("live")
    assert page.evaluate("sessionStorage.getItem('cctv.token')") == system.token

    # A token the service stops accepting (any 401) returns to the sign-in.
    page.evaluate("sessionStorage.setItem('cctv.token', 'revoked')")
    page.reload()
    expect(page.locator("#signin-error")).to_contain_text("no longer accepts")
    assert page.evaluate("sessionStorage.getItem('cctv.token')") is None


# -- schedules ---------------------------------------------------------------------


def test_a_continuous_schedule_made_in_the_editor_is_applied_by_the_node(
        page: Page, system: System) -> None:
    h264_camera = system.h264_camera
    node_page(page, system)
    expect(page.locator(f'article[data-camera="{h264_camera}"]')).to_be_visible()
    expect(page.locator("#schedule-revision")).to_contain_text("in sync")
    desired = int(page.locator("#rev-desired").inner_text())

    page.get_by_role("button", name="New schedule").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Schedule id").fill(SCHEDULE_ID)
    dialog.get_by_label("Kind").select_option("continuous")
    dialog.get_by_label(system.camera_id, exact=True).check()
    dialog.get_by_label(h264_camera, exact=True).check()
    dialog.get_by_label("Segment length (s)").fill("2")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog).to_have_count(0)

    row = page.locator(f'tr[data-schedule="{SCHEDULE_ID}"]')
    expect(row).to_contain_text("all the time")
    # The service bumped the desired revision; the node applies it and the
    # page shows it catch up, from the live stream, without a reload.
    expect(page.locator("#rev-desired")).to_have_text(str(desired + 1))
    expect(page.locator("#rev-applied")).to_have_text(str(desired + 1), timeout=20_000)
    expect(page.locator("#schedule-revision")).to_contain_text("in sync")

    browser_zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    stored = system.api.get(f"/api/schedules/{SCHEDULE_ID}").json()
    assert stored == {"schedule_id": SCHEDULE_ID, "camera_ids": [system.camera_id, h264_camera],
                      "kind": "continuous", "tz": browser_zone, "enabled": True,
                      "segment_seconds": 2}


def editor_fields(dialog: Locator, kind: str) -> Locator:
    return dialog.locator(f'fieldset[data-kind="{kind}"]')


def create_in_editor(page: Page, schedule_id: str, kind: str, camera_id: str) -> Locator:
    page.get_by_role("button", name="New schedule").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Schedule id").fill(schedule_id)
    dialog.get_by_label("Kind").select_option(kind)
    dialog.get_by_label(camera_id, exact=True).check()
    dialog.get_by_label("Enabled", exact=True).uncheck()
    return dialog


def test_the_editor_writes_every_kind_in_its_time_zone_and_edits_toggles_deletes(
        page: Page, system: System) -> None:
    node_page(page, system)
    camera = system.camera_id
    made: dict[str, dict[str, Any]] = {}

    dialog = create_in_editor(page, "browser-once", "once", camera)
    dialog.get_by_label("Time zone").select_option("Europe/Paris")
    editor_fields(dialog, "once").get_by_label("Start").fill("2030-07-02T08:00")
    editor_fields(dialog, "once").get_by_label("End").fill("2030-07-02T09:30")
    dialog.get_by_role("button", name="Create schedule").click()
    made["browser-once"] = {"kind": "once", "tz": "Europe/Paris",
                            "start": "2030-07-02T06:00:00Z", "end": "2030-07-02T07:30:00Z"}

    dialog = create_in_editor(page, "browser-daily", "daily", camera)
    dialog.get_by_label("Time zone").select_option("America/New_York")
    editor_fields(dialog, "daily").get_by_label("Start time").fill("22:00")
    editor_fields(dialog, "daily").get_by_label("End time").fill("06:00")
    dialog.get_by_role("button", name="Create schedule").click()
    made["browser-daily"] = {"kind": "daily", "tz": "America/New_York",
                             "start_time": "22:00:00", "end_time": "06:00:00"}

    dialog = create_in_editor(page, "browser-weekly", "weekly", camera)
    days = editor_fields(dialog, "weekly")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        days.get_by_label(day, exact=True).uncheck()
    for day in ("sat", "sun"):
        days.get_by_label(day, exact=True).check()
    days.get_by_label("Start time").fill("10:00")
    days.get_by_label("End time").fill("16:30")
    dialog.get_by_role("button", name="Create schedule").click()
    made["browser-weekly"] = {"kind": "weekly", "days": ["sat", "sun"],
                              "start_time": "10:00:00", "end_time": "16:30:00"}

    dialog = create_in_editor(page, "browser-cron", "cron", camera)
    editor_fields(dialog, "cron").get_by_label("Cron expression").fill("*/5 * * * *")
    editor_fields(dialog, "cron").get_by_label("Duration (s)").fill("60")
    dialog.get_by_role("button", name="Create schedule").click()
    made["browser-cron"] = {"kind": "cron", "expression": "*/5 * * * *", "duration_s": 60}

    # A bad cron expression is refused with the service's reason, in the form.
    dialog = create_in_editor(page, "browser-bad", "cron", camera)
    editor_fields(dialog, "cron").get_by_label("Cron expression").fill("99 * * * *")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog.get_by_role("alert")).to_contain_text("cron")
    dialog.get_by_role("button", name="Cancel").click()

    for schedule_id, fields in made.items():
        expect(page.locator(f'tr[data-schedule="{schedule_id}"]')).to_be_visible()
        stored = system.api.get(f"/api/schedules/{schedule_id}").json()
        assert stored["enabled"] is False
        assert stored["camera_ids"] == [camera]
        assert {k: stored[k] for k in fields} == fields, schedule_id
    assert system.api.get("/api/schedules/browser-bad").status_code == 404

    # Edit: the form comes back with the stored values, shown in the schedule's zone.
    page.get_by_role("button", name="Edit schedule browser-once").click()
    dialog = page.locator("dialog[open]")
    expect(editor_fields(dialog, "once").get_by_label("Start")).to_have_value("2030-07-02T08:00")
    editor_fields(dialog, "once").get_by_label("End").fill("2030-07-02T10:00")
    dialog.get_by_role("button", name="Save changes").click()
    expect(page.locator('tr[data-schedule="browser-once"]')).to_contain_text("10:00")
    assert system.api.get("/api/schedules/browser-once").json()["end"] == "2030-07-02T08:00:00Z"

    # Enable from the table, then delete them all.
    page.get_by_label("Enabled: browser-weekly").check()
    expect(page.locator("#schedule-message")).to_contain_text("enabled")
    assert system.api.get("/api/schedules/browser-weekly").json()["enabled"] is True
    page.on("dialog", lambda confirm: confirm.accept())
    for schedule_id in made:
        page.get_by_role("button", name=f"Delete schedule {schedule_id}").click()
        expect(page.locator(f'tr[data-schedule="{schedule_id}"]')).to_have_count(0)
        assert system.api.get(f"/api/schedules/{schedule_id}").status_code == 404


# -- recordings --------------------------------------------------------------------


def test_the_recording_appears_on_the_timeline_and_a_segment_plays(
        page: Page, system: System) -> None:
    h264_camera = system.h264_camera
    ensure_recording(system)
    wait_for_uploaded(system, h264_camera, 2)
    wait_for_uploaded(system, system.camera_id, 2)
    sign_in(page, system, f"#/recordings?node={system.node_id}")
    page.get_by_label("Zoom").select_option("5m")

    demo = page.locator(f'.track[data-camera="{system.camera_id}"]')
    lobby = page.locator(f'.track[data-camera="{h264_camera}"]')
    expect(demo.locator('.seg[data-state="uploaded"]').first).to_be_visible()
    expect(lobby.locator('.seg[data-state="uploaded"]').first).to_be_visible()
    expect(demo.locator(".coverage")).to_contain_text("scheduled")
    # It keeps up by itself: more segments arrive without a reload.
    shown = lobby.locator(".seg").count()
    expect(lobby.locator(".seg")).not_to_have_count(shown, timeout=15_000)

    # The demo camera's codec decides whether this browser can play it.
    demo.locator('.seg[data-state="uploaded"]').last.click()
    if browser_plays(page, segment_codec(system, system.camera_id)):
        assert wait_until_playing(page) > 0
    else:
        expect(page.locator("#player-message")).to_contain_text("cannot decode")

    assert browser_plays(page, segment_codec(system, h264_camera))
    lobby.locator('.seg[data-state="uploaded"]').last.click()
    expect(page.locator("#player-caption")).to_contain_text(h264_camera)
    length = wait_until_playing(page)
    assert 0.5 < length < 10, length
    expect(page.locator("#player-message")).to_have_text("")
    page.evaluate("(() => { const v = document.getElementById('player-video');"
                  " v.pause(); v.currentTime = Math.min(1, v.duration / 2); })()")
    page.wait_for_timeout(300)
    save_screenshot(page, "dashboard-timeline", full_page=True)


def test_a_manual_recording_from_the_node_page_is_accepted(
        page: Page, system: System) -> None:
    h264_camera = system.h264_camera
    ensure_recording(system)
    node_page(page, system)
    card = page.locator(f'article[data-camera="{system.camera_id}"]')
    card.get_by_label("Manual recording (s)").fill("5")
    card.get_by_role("button", name=f"Record {system.camera_id} now").click()
    expect(card.locator("output.reply")).to_contain_text("Accepted", timeout=15_000)
    # The node's reply also reaches the live feed.
    expect(page.locator('#feed .feed-item[data-type="replies"]').first).to_contain_text("accepted")

    # Health figures arrive with the node's next heartbeat (every 10 s in
    # `cctv up`); the H.264 camera's latest segment shows as its picture.
    for camera_id in (system.camera_id, h264_camera):
        figures = page.locator(f'article[data-camera="{camera_id}"]')
        expect(figures.locator(".badge")).to_have_text("recording", timeout=25_000)
        expect(figures.locator('[data-field="reconnects"]')).to_have_text("0")
        expect(figures.locator('[data-field="fps"]')).not_to_have_text("—")
    preview = page.locator(f'article[data-camera="{h264_camera}"] video')
    page.wait_for_function("(v) => v.readyState >= 2", arg=preview.element_handle(timeout=25_000),
                           timeout=15_000)
    save_screenshot(page, "dashboard-node")


# -- presence ------------------------------------------------------------------------


def test_a_node_that_stops_answering_is_shown_offline_within_one_and_a_half_keepalives(
        page: Page, system: System) -> None:
    node_id, process = system.second_node, system.second_edge
    assert process is not None
    sign_in(page, system)
    row = page.locator(f'tr[data-node="{node_id}"]')
    expect(row.locator(".status")).to_have_text("online", timeout=30_000)
    expect(row.locator(".heartbeat .age")).to_have_class("age age-fresh")

    # Frozen, not killed: its connection stays open and silent, so only the
    # broker's keepalive check can notice (a kill would close the socket and
    # the Will would come at once). Mosquitto 2.0 runs that check only every
    # ~6 s, so the broker's budget is 1.5 keepalives plus that period.
    process.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    budget_s = 1.5 * SECOND_NODE_KEEPALIVE_S + BROKER_CHECK_PERIOD_S
    while system.api.get(f"/api/nodes/{node_id}").json()["online"]:
        assert time.monotonic() - frozen_at < budget_s, "the cloud still thinks it is online"
        time.sleep(0.1)
    # The page follows the cloud at once, from the live stream (its own
    # periodic refresh would take up to 10 s).
    expect(row.locator(".status")).to_have_text("offline", timeout=2_000)
    assert time.monotonic() - frozen_at < budget_s
    expect(page.locator(f'#feed .feed-item[data-node="{node_id}"][data-type="status"]').first) \
        .to_contain_text("offline")

    # Filters and search narrow the (paged) list.
    page.get_by_label("Offline", exact=True).check()
    expect(page.locator("tr[data-node]")).to_have_count(1)
    expect(row).to_be_visible()
    page.get_by_label("All", exact=True).check()
    page.get_by_label("Search").fill("site-2")
    expect(page.locator("tr[data-node]")).to_have_count(1)
    page.get_by_label("Search").fill("")
    expect(page.locator("tr[data-node]")).to_have_count(2)
    expect(page.locator(f'tr[data-node="{system.node_id}"] .camera-count')).to_have_text("2")
    page.get_by_label("Search").blur()
    save_screenshot(page, "dashboard-overview")
