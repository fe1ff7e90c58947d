# Times the UI's first page in headless Chromium (through chromedriver): navigation start to
# the runs table drawn (window.clusterlabFirstPageMs), for a fresh browser profile each time.
import json, subprocess, sys, tempfile, time, urllib.request

def call(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))

ui_url, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
drv = subprocess.Popen(["chromedriver", "--port=9515"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            call("GET", "http://127.0.0.1:9515/status"); break
        except Exception:
            time.sleep(0.1)
    for i in range(runs):
        prof = tempfile.mkdtemp()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" + prof]
        s = call("POST", "http://127.0.0.1:9515/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["value"]["sessionId"]
        base = f"http://127.0.0.1:9515/session/{s}"
        call("POST", base + "/url", {"url": ui_url})
        ms = None
        for _ in range(600):
            ms = call("POST", base + "/execute/sync", {"script": "return window.clusterlabFirstPageMs || null", "args": []})["value"]
            if ms: break
            time.sleep(0.05)
        rows = call("POST", base + "/execute/sync", {"script": "return document.querySelectorAll('#runs tr[data-run]').length", "args": []})["value"]
        nav = call("POST", base + "/execute/sync", {"script": "const t = performance.getEntriesByType('resource').find(e => e.name.includes('/api/runs')); return t ? t.duration : null", "args": []})["value"]
        print(json.dumps({"first_table_ms": round(ms), "api_runs_ms_in_browser": round(nav) if nav else None, "rows_drawn": rows}))
        call("DELETE", base)
finally:
    drv.kill()
