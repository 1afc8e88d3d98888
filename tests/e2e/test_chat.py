"""Joining and chatting in real browsers: presence, history, typing, read state, and
messages that survive a dropped socket and a reload."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage
from tests.support.participants import set_operators_read_chat

pytestmark = [pytest.mark.slow, pytest.mark.browser]


async def test_two_people_join_and_chat_both_ways(open_page: OpenPage) -> None:
    ada = await open_page("ada", role="mentor")
    bo = await open_page("bo")
    await expect(ada.tile("bo")).to_be_visible()
    await expect(bo.tile("ada")).to_be_visible()

    await ada.say("Welcome! What would you like to work on?")
    await expect(bo.message("Welcome! What would you like to work on?")).to_be_visible()
    await expect(bo.page.locator("#unread")).to_be_hidden()  # chat open and visible: read
    await expect(
        ada.message("Welcome! What would you like to work on?").locator(".msg-status")
    ).to_have_text("Seen by Bo")

    await bo.composer().fill("System design")
    await expect(ada.page.locator("#chat-typing")).to_have_text("Bo is typing…")
    await bo.composer().press("Enter")
    await expect(ada.message("System design")).to_be_visible()
    await expect(ada.page.locator("#chat-typing")).to_have_text("")

    # Closing the chat panel: new messages count as unread until it opens again.
    await bo.page.get_by_role("button", name="Chat").click()
    await ada.say("Let's start with the interview format.")
    await expect(bo.page.locator("#unread")).to_have_text("1")
    await bo.page.get_by_role("button", name="Chat").click()
    await expect(bo.page.locator("#unread")).to_be_hidden()


async def test_observer_is_told_the_chat_is_private(open_page: OpenPage) -> None:
    """With operators_read_chat off (the default) an observer's chat panel says why it is
    empty; a member of the pair sees the chat as usual and no such note."""
    ada = await open_page("ada")
    await ada.say("Only for Bo and me.")
    olga = await open_page("olga", role="observer")
    await expect(olga.tile("ada")).to_be_visible()
    note = olga.page.locator(".chat-private")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("chat is private")
    await expect(olga.message("Only for Bo and me.")).to_have_count(0)
    await expect(ada.page.locator(".chat-private")).to_have_count(0)


async def test_late_joiner_sees_history_and_everyone(open_page: OpenPage, base_url: str) -> None:
    # Observers read chat only where the program lets its operators read it.
    await asyncio.to_thread(set_operators_read_chat, base_url, True)
    ada = await open_page("ada")
    bo = await open_page("bo")
    await ada.say("Notes from last time: read chapter 3.")
    await expect(bo.message("Notes from last time: read chapter 3.")).to_be_visible()

    cy = await open_page("cy", role="observer")
    await expect(cy.tile("ada")).to_be_visible()
    await expect(cy.tile("bo")).to_be_visible()
    await expect(cy.message("Notes from last time: read chapter 3.")).to_be_visible()
    await expect(cy.composer()).to_be_disabled()  # observers read along

    await bo.page.get_by_role("button", name="Leave").click()
    await expect(bo.page.get_by_role("heading", name="You left the meeting")).to_be_visible()
    await expect(ada.tile("bo")).to_have_count(0)
    await expect(cy.tile("bo")).to_have_count(0)


async def test_dropped_socket_delivers_pending_chat_once(open_page: OpenPage) -> None:
    ada = await open_page("ada", diag=("debug-handle",))
    bo = await open_page("bo")

    # The socket drops right after the send, before the ack: the message stays pending,
    # and after the automatic reconnect it is resent with the same client_id.
    await ada.composer().fill("Sent as the network dropped")
    await ada.evaluate("""() => {
        document.querySelector('#chat-form button[type=submit]').click();
        window.pairwiseDebug.dropSocket();
    }""")
    await expect(ada.page.locator("#conn-status")).to_have_text("Connected")
    await expect(bo.message("Sent as the network dropped")).to_have_count(1)
    await expect(ada.message("Sent as the network dropped").locator(".msg-status")).to_have_text(
        "Seen by Bo"
    )

    # Written while offline: shown as waiting, delivered after the reconnect.
    await ada.evaluate(
        "() => { window.pairwiseDebug.room.socket.socket.io.reconnection(false);"
        " window.pairwiseDebug.dropSocket(); }"
    )
    await expect(ada.page.locator("#conn-status")).to_have_text("Reconnecting…")
    await ada.say("Written while offline")
    await expect(ada.message("Written while offline").locator(".msg-status")).to_have_text(
        "Waiting for connection"
    )
    await ada.evaluate(
        "() => { const io = window.pairwiseDebug.room.socket.socket.io;"
        " io.reconnection(true); window.pairwiseDebug.room.socket.reconnect(); }"
    )
    await expect(bo.message("Written while offline")).to_have_count(1)
    await expect(ada.message("Written while offline")).to_have_count(1)
    await expect(bo.message("Sent as the network dropped")).to_have_count(1)
    await expect(ada.messages()).to_have_count(2)
    await expect(bo.messages()).to_have_count(2)


async def test_pending_message_survives_a_reload(open_page: OpenPage) -> None:
    ada = await open_page("ada", diag=("debug-handle",))
    bo = await open_page("bo")
    await ada.evaluate(
        "() => { window.pairwiseDebug.room.socket.socket.io.reconnection(false);"
        " window.pairwiseDebug.dropSocket(); }"
    )
    await ada.say("Kept across a reload")
    await expect(ada.message("Kept across a reload")).to_have_class("msg mine pending")

    await expect(bo.message("Kept across a reload")).to_have_count(0)  # never left the page

    await ada.page.reload()  # the token and the pending message come from sessionStorage
    await expect(ada.tile("ada")).to_be_visible()  # back in the meeting without a click
    await expect(bo.message("Kept across a reload")).to_have_count(1)
    await expect(ada.message("Kept across a reload").locator(".msg-status")).to_have_text(
        "Seen by Bo"
    )
