"""`othello-tui serve`: the real command answers HTTP within 5 s of its start and stops cleanly on
Ctrl-C; where Debian's chromium is installed, a headless browser opens the page, sees the board,
steps the game with a key and takes a screenshot."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from othello_tui.cli import main

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_weights):
    """A running `othello-tui serve` on a free port: (process, url, seconds until it answered)."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "othello_tui", "serve", "--port", str(port)]
    command += ["--weights", str(tiny_weights), "--device", "cpu", "--no-build"]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                page = response.read().decode()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() - started > 30:
                process.kill()
                pytest.fail(f"serve did not answer: {process.stdout.read()}")
            time.sleep(0.05)
    answered = time.monotonic() - started
    yield process, url, answered, page
    if process.poll() is None:
        process.kill()
        process.wait()


def test_serve_answers_within_5_s_and_stops_cleanly(server):
    process, url, answered, page = server
    assert answered < 5.0
    assert "othello-tui" in page
    assert f"ws://127.0.0.1:{url.rsplit(':', 1)[1]}/ws" in page  # the page's websocket comes back here
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=15)
    assert process.returncode == 0, out
    assert f"othello-tui in a browser: {url}" in out and "ssh -L" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--moves", "f-4 e-9"], "--moves: move 2 'e-9': not a square"),
        (["--moves", "f-4", "--game-index", "3"], "give --moves or --game-index, not both"),
    ],
)
def test_bad_play_options_fail_before_serving(args, message):
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_a_taken_port_gets_a_message(tiny_weights):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "othello_tui",
                "serve",
                "--port",
                str(port),
                "--weights",
                str(tiny_weights),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


# --- the page in a real browser (Chrome DevTools Protocol over aiohttp, textual-serve's own dependency)

#: records every byte the page's websocket receives (the app's terminal output), as text
_RECORD_WEBSOCKET = """
window.__received = "";
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  ws.addEventListener("message", async (event) => {
    const data = event.data;
    const bytes = typeof data === "string" ? data : new TextDecoder().decode(
      data instanceof Blob ? await data.arrayBuffer() : data);
    window.__received += bytes;
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class _Browser:
    """One headless chromium page, driven over the DevTools protocol."""

    def __init__(self, websocket):
        self._ws, self._id = websocket, 0

    async def call(self, method: str, **params):
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": method, "params": params})
        async for message in self._ws:
            data = json.loads(message.data)
            if data.get("id") == self._id:
                assert "error" not in data, data
                return data["result"]
        raise RuntimeError("the browser closed the connection")

    async def screen_text(self) -> str:
        result = await self.call("Runtime.evaluate", expression="window.__received || ''")
        return _ANSI.sub("", result["result"]["value"])

    async def wait_for(self, text: str, timeout: float = 60.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = await self.screen_text()
            if text in received[after:]:
                return received
            await asyncio.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the page received: {received[-2000:]!r}")

    async def press(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code
            )


async def _drive(url: str, profile: Path, screenshot: Path) -> None:
    import aiohttp

    chromium = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--window-size=1280,800", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in chromium.stderr:
            found = re.search(r"DevTools listening on ws://[^/]+:(\d+)/", line)
            if found:
                break
        else:
            pytest.fail("chromium did not start its DevTools server")
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{found.group(1)}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as websocket:
                browser = _Browser(websocket)
                await browser.call("Page.enable")  # without it the script below never runs
                await browser.call("Page.addScriptToEvaluateOnNewDocument", source=_RECORD_WEBSOCKET)
                await browser.call("Page.navigate", url=url)
                shown = await browser.wait_for("move 1 of 60")
                await browser.wait_for("Predictions for move 2")
                for row in "abcdefgh":  # the labelled board
                    assert re.search(rf"(^|\s){row}\s", shown) or row in shown
                await browser.wait_for("legal so far")  # the model loaded and predicted
                before = len(await browser.screen_text())
                # keys go to the focused element: xterm's input textarea, as after a click
                await browser.call(
                    "Runtime.evaluate", expression="document.querySelector('.xterm-helper-textarea').focus()"
                )
                await browser.press("ArrowRight", "ArrowRight", 39)
                await browser.wait_for("move 2 of 60", after=before)
                await browser.wait_for("legal so far", after=before)
                await asyncio.sleep(0.5)  # let the canvas paint the frame
                shot = await browser.call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        chromium.terminate()
        chromium.wait(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_shows_the_board_and_a_key_steps_the_game(server, tmp_path):
    process, url, _, _ = server
    screenshot = tmp_path / "serve.png"
    asyncio.run(asyncio.wait_for(_drive(url, tmp_path / "profile", screenshot), timeout=120))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=15)
    assert process.returncode == 0
