"""A folder, chosen or dropped, brings the operating system's own files along (.DS_Store,
AppleDouble ._*, Thumbs.db, desktop.ini, dot-folders): each was an upload of its own ending in
"Nothing imported". The page leaves them out of a folder and says once, quietly, how many; a file
chosen by itself is always sent."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _items_named(page):
    return sorted(page.locator("[data-testid=upload-item] .mono").all_inner_texts())


def test_a_chosen_folder_leaves_the_systems_files_out_and_says_how_many(page, live_server, tmp_path):
    org = OrganizationFactory(slug="folder-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@folder.example")
    signed_in_as(page, live_server.url, user)
    folder = tmp_path / "export"
    (folder / "CT").mkdir(parents=True)
    (folder / ".Spotlight-V100").mkdir()
    (folder / "CT" / "IM0001").write_bytes(b"\0" * 300)
    (folder / "CT" / "IM0002").write_bytes(b"\0" * 301)
    for name in (".DS_Store", "CT/._IM0001", "Thumbs.db", "desktop.ini", ".Spotlight-V100/store.db"):
        (folder / name).write_bytes(b"\1" * 50)

    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    skipped = page.get_by_test_id("upload-skipped")
    expect(skipped).to_be_hidden()
    page.locator("#upload-folder").set_input_files(str(folder))
    expect(skipped).to_be_visible()
    expect(skipped).to_contain_text("5 system files skipped (")
    expect(page.get_by_test_id("upload-item")).to_have_count(2)
    assert _items_named(page) == ["export/CT/IM0001", "export/CT/IM0002"]

    # chosen by itself, a system file is sent as the user asked
    page.locator("#upload-files").set_input_files(str(folder / ".DS_Store"))
    expect(page.get_by_test_id("upload-item")).to_have_count(3)
    assert ".DS_Store" in _items_named(page)


def test_a_dropped_folder_leaves_the_systems_files_out_but_not_a_file_dropped_by_itself(page, live_server):
    org = OrganizationFactory(slug="drop-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@drop.example")
    signed_in_as(page, live_server.url, user)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    # a drop as Chromium hands it over (FileSystemEntry objects): a folder with a scan and two
    # system files, and a .DS_Store dropped by itself next to it
    page.evaluate("""() => {
      const file = (name, body) => new File([body], name);
      const fileEntry = (f) => ({isFile: true, isDirectory: false, name: f.name, file: (cb) => cb(f)});
      const dirEntry = (name, children) => ({isFile: false, isDirectory: true, name, createReader() {
        let read = false;
        return {readEntries(cb) { const out = read ? [] : children; read = true; cb(out); }};
      }});
      const entries = [
        dirEntry("study", [fileEntry(file("IM0001", "scan")), fileEntry(file(".DS_Store", "mac")),
                           fileEntry(file("Thumbs.db", "win"))]),
        fileEntry(file(".DS_Store", "chosen")),
      ];
      const drop = new Event("drop", {bubbles: true, cancelable: true});
      Object.defineProperty(drop, "dataTransfer", {value: {
        items: entries.map((e) => ({webkitGetAsEntry: () => e})), files: []}});
      document.getElementById("dropzone").dispatchEvent(drop);
    }""")
    expect(page.get_by_test_id("upload-item")).to_have_count(2)
    assert _items_named(page) == [".DS_Store", "study/IM0001"]
    expect(page.get_by_test_id("upload-skipped")).to_have_text("2 system files skipped (.DS_Store, Thumbs.db)")


def test_a_folder_whose_own_name_starts_with_a_dot_is_sent_chosen_or_dropped(page, live_server, tmp_path):
    """The path's first part is the folder the user chose or dropped: ".export" is theirs, not
    the system's; the system's files inside it are still left out."""
    org = OrganizationFactory(slug="dot-folder-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@dot-folder.example")
    signed_in_as(page, live_server.url, user)
    folder = tmp_path / ".export"
    (folder / "CT").mkdir(parents=True)
    (folder / "CT" / "IM0001").write_bytes(b"\0" * 300)
    (folder / ".DS_Store").write_bytes(b"\1" * 50)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    page.locator("#upload-folder").set_input_files(str(folder))
    expect(page.get_by_test_id("upload-item")).to_have_count(1)
    assert _items_named(page) == [".export/CT/IM0001"]
    expect(page.get_by_test_id("upload-skipped")).to_have_text("1 system file skipped (.DS_Store)")

    page.evaluate("""() => {
      const fileEntry = (f) => ({isFile: true, isDirectory: false, name: f.name, file: (cb) => cb(f)});
      const dirEntry = (name, children) => ({isFile: false, isDirectory: true, name, createReader() {
        let read = false;
        return {readEntries(cb) { const out = read ? [] : children; read = true; cb(out); }};
      }});
      const entry = dirEntry(".dropped", [fileEntry(new File(["scan"], "IM0002")),
                                          fileEntry(new File(["mac"], "._IM0002"))]);
      const drop = new Event("drop", {bubbles: true, cancelable: true});
      Object.defineProperty(drop, "dataTransfer", {value: {items: [{webkitGetAsEntry: () => entry}], files: []}});
      document.getElementById("dropzone").dispatchEvent(drop);
    }""")
    expect(page.get_by_test_id("upload-item")).to_have_count(2)
    assert _items_named(page) == [".dropped/IM0002", ".export/CT/IM0001"]
    expect(page.get_by_test_id("upload-skipped")).to_have_text("1 system file skipped (._IM0002)")
