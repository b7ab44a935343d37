"""The course website (website/build.py): its recordings, its build, and its pages in a real browser.

The fast tests check the recording and the merging of outputs on small
notebooks. The browser tests build two sites: one from a quick run of
mnist-mlp made here (so that figures, outputs and the home table's numbers
are really exercised), and one from the committed recordings in
website/runs/. Each is served on 127.0.0.1 and driven with Playwright in
Debian's chromium (installed with apt-get where it is missing and we are
root on Debian; elsewhere the browser tests skip, except with CI=true,
where they fail). Screenshots of the committed site's home page and
CIFAR-10 CNN page go to build/site-screenshots/.
"""

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import nbformat
import pytest

from cnn_course import lessons

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "site-screenshots"


def _load_build():
    spec = importlib.util.spec_from_file_location("website_build", REPO / "website" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site = _load_build()


def unavailable(reason):
    """Skip with `reason`, or fail with it under CI=true (where every check must run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the site's browser tests must run)")
    pytest.skip(reason)


def _no_proxy_env():
    """The environment less conftest's closed-port proxies (apt-get would use them)."""
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}


# --------------------------------------------------------------------------
# Small notebooks for the fast tests


def _code(source, outputs=(), tags=()):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def _figure():
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
    }


def test_merge_takes_outputs_by_code_and_drops_the_injected_cell():
    current = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title\nnew text"),
            _code("EPOCHS = 10", tags=["parameters"]),
            _code("print(EPOCHS)  "),  # trailing blanks do not count
            _code("plot()"),
            _code("plot()"),
        ]
    )
    recorded = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title\nold text"),
            _code("EPOCHS = 10", tags=["parameters"]),
            _code("EPOCHS = 1", [_stream("injected\n")], tags=["injected-parameters"]),
            _code("print(EPOCHS)", [_stream("1\n")]),
            _code("plot()", [_figure()]),
            _code("plot()", [_stream("second\n")]),
        ]
    )
    merged, missing = site.merge_outputs(current, recorded)
    assert missing == []
    assert [c.source for c in merged.cells] == [c.source for c in current.cells]  # no injected cell
    assert merged.cells[0].source == "# Title\nnew text"  # markdown from the current notebook
    assert merged.cells[2].outputs[0]["text"] == "1\n"
    assert site.figure_count([merged.cells[3]]) == 1  # repeated code: matched in order
    assert merged.cells[4].outputs[0]["text"] == "second\n"
    assert current.cells[2].outputs == []  # the current notebook itself is untouched


def test_merge_names_the_code_cells_the_recording_lacks():
    current = nbformat.v4.new_notebook(cells=[_code("a = 1"), _code("b = 2\nprint(b)"), _code("   ")])
    recorded = nbformat.v4.new_notebook(cells=[_code("a = 1", [_stream("x")])])
    merged, missing = site.merge_outputs(current, recorded)
    assert missing == [(2, "b = 2")]  # the blank cell needs no match
    assert merged.cells[1].outputs == []


def test_repository_url_comes_from_pyproject(tmp_path):
    url = site.repository_url()
    assert url.startswith("https://github.com/")
    assert site.colab_url("mnist-mlp/mnist_mlp.ipynb") == (
        "https://colab.research.google.com/github/"
        + url.removeprefix("https://github.com/")
        + "/blob/main/mnist-mlp/mnist_mlp.ipynb"
    )
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\n')
    with pytest.raises(site.SiteError, match="Repository"):
        site.repository_url(bad)


def _fake_run(run_dir, lessons, mode="full", status="passed"):
    """Write a runner report for `lessons` (executed copies: the committed
    notebooks with one printed line in each code cell; a script's output text)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in lessons:
        path = site.recorded_paths()[name]  # a lesson, or "<lesson> answers"
        if path.endswith(".ipynb"):
            nb = nbformat.read(REPO / path, as_version=4)
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    cell.outputs = [nbformat.from_dict(_stream(f"{name} cell {i}\n"))]
                    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
            executed = (
                run_dir / Path(path).parent.name / Path(path).name
                if name.endswith(" answers")
                else run_dir / Path(path).name
            )  # the runner puts answers in out/solutions/
            executed.parent.mkdir(exist_ok=True)
            nbformat.write(nb, executed)
        else:
            executed = run_dir / f"{Path(path).stem}.txt"
            executed.write_text(f"{name} printed this\n")
        rows.append(
            {
                "lesson": name,
                "path": str(REPO / path),
                "status": status,
                "data": "real",
                "epochs": 3,
                "test_accuracy": 91.234,
                "wall_time_s": 61.0,
                "error": None if status == "passed" else "boom",
                "executed_path": str(executed),
                "stand_in": False,
            }
        )
    report = {
        "mode": mode,
        "parameters": {"VERBOSE": 2},
        "passed": 0,
        "failed": 0,
        "environment": {"device": "CPU", "keras": "3.x", "backend": "tensorflow", "backend_version": "2.x"},
        "lessons": rows,
    }
    (run_dir / "results.json").write_text(json.dumps(report))


def test_record_merges_rows_so_one_lesson_keeps_the_others(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(tmp_path / "a", ["mnist-mlp", "conv-dims"])
    recorded, skipped = site.record_run(tmp_path / "a", runs)
    assert (recorded, skipped) == (["mnist-mlp", "conv-dims"], {})
    first = json.loads((runs / "results.json").read_text())["lessons"]
    _fake_run(tmp_path / "b", ["cifar10-mlp"])
    os.utime(tmp_path / "b" / "results.json", (0, 0))  # a run made on another day: 1970-01-01
    assert site.record_run(tmp_path / "b", runs) == (["cifar10-mlp"], {})
    rows = site.load_results(runs)
    assert list(rows) == ["mnist-mlp", "cifar10-mlp", "conv-dims"]  # course order
    assert rows["mnist-mlp"] == first[0] and rows["conv-dims"] == first[1]  # kept as they were
    assert rows["cifar10-mlp"]["date"] == "1970-01-01" != rows["mnist-mlp"]["date"]
    assert rows["conv-dims"]["source_sha256"] == site.sha256_file(REPO / "conv-dims.py")
    assert (runs / "conv-dims.txt").read_text() == "conv-dims printed this\n"
    saved = nbformat.read(runs / "mnist-mlp" / "mnist_mlp.ipynb", as_version=4)
    assert all("execution" not in c.metadata for c in saved.cells)  # no timings in git
    assert any(c.get("outputs") for c in saved.cells)
    assert not list(runs.rglob("*.tmp"))


def test_record_refuses_a_quick_run_and_keeps_what_a_failed_lesson_had(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(tmp_path / "quick", ["mnist-mlp"], mode="quick")
    with pytest.raises(site.SiteError, match="quick run"):
        site.record_run(tmp_path / "quick", runs)
    assert not runs.exists()
    _fake_run(tmp_path / "good", ["mnist-mlp"])
    site.record_run(tmp_path / "good", runs)
    before = (runs / "results.json").read_bytes(), (runs / "mnist-mlp" / "mnist_mlp.ipynb").read_bytes()
    _fake_run(tmp_path / "bad", ["mnist-mlp"], status="failed")
    recorded, skipped = site.record_run(tmp_path / "bad", runs)
    assert recorded == [] and "failed: boom" in skipped["mnist-mlp"]
    assert ((runs / "results.json").read_bytes(), (runs / "mnist-mlp" / "mnist_mlp.ipynb").read_bytes()) == before


def test_recorded_answers_fold_under_their_exercises_on_the_lesson_page(tmp_path):
    lesson = next(iter(site.answer_lessons()), None)
    if lesson is None:
        pytest.skip("no lesson has an answer notebook yet")
    name = lesson.removesuffix(site.ANSWERS_SUFFIX)
    runs = tmp_path / "runs"
    _fake_run(tmp_path / "run", [name, lesson])
    assert site.record_run(tmp_path / "run", runs) == ([name, lesson], {})
    assert (runs / site.answer_path(name)).is_file()
    rows = site.load_results(runs)
    page, stale = site.prepare_lesson(name, site.LESSONS[name], rows, runs, "https://github.com/o/r")
    assert stale is None
    titles = lessons.exercise_titles(nbformat.read(REPO / site.LESSONS[name], as_version=4))
    cells = page.cells[site.exercises_cell(page) :]
    items = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.match(r"\d+\. \*\*", c.source)]
    assert len(items) == len(titles)  # one cell per exercise, each followed by its folded answer
    for at in items:
        number = int(cells[at].source.split(".")[0])
        answer = cells[at + 1]
        assert answer.source.startswith('<details class="course-answer">\n<summary>Show answer</summary>')
        code = cells[at + 2]
        assert code.cell_type == "code" and "hide-cell" in code.metadata["tags"], number
        assert any(f"{lesson} cell" in o.get("text", "") for o in code.outputs)  # the recording's outputs
    # an answer notebook whose code changed since its recording makes the lesson stale
    recording = runs / site.answer_path(name)
    nb = nbformat.read(recording, as_version=4)
    next(c for c in reversed(nb.cells) if c.cell_type == "code").source += "\nprint('changed')"
    nbformat.write(nb, recording)
    _, stale = site.prepare_lesson(name, site.LESSONS[name], rows, runs, "https://github.com/o/r")
    assert stale and "refresh --answers" in stale


def _build_cli(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "website" / "build.py"), *args], capture_output=True, text=True, cwd=REPO
    )


def test_a_stale_recording_fails_the_build_in_one_line_and_keeps_the_site(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "site"
    _fake_run(tmp_path / "run", ["mnist-mlp", "conv-dims"])
    site.record_run(tmp_path / "run", runs)
    recording = runs / "mnist-mlp" / "mnist_mlp.ipynb"
    nb = nbformat.read(recording, as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source += "\nEXTRA = 1"  # the recording no longer matches the lesson's parameters cell
    nbformat.write(nb, recording)
    (runs / "conv-dims.txt").write_text("x\n")
    rows = json.loads((runs / "results.json").read_text())
    rows["lessons"][1]["source_sha256"] = "0" * 64  # as if conv-dims.py changed since its run
    (runs / "results.json").write_text(json.dumps(rows))
    out.mkdir()
    (out / "index.html").write_text("the previous site")
    done = _build_cli("build", "--runs", str(runs), "--out", str(out))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "mnist-mlp" in lines[0] and "conv-dims" in lines[0]
    assert 'make site-refresh LESSONS="mnist-mlp conv-dims"' in lines[0]
    assert (out / "index.html").read_text() == "the previous site"


def test_refresh_refuses_an_unknown_lesson_before_running_anything(tmp_path):
    done = _build_cli("refresh", "no-such-lesson", "--runs", str(tmp_path / "runs"), "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: no lesson named no-such-lesson; the lessons: {', '.join(site.LESSONS)}"
    ]
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------
# The browser


def watch_page(page, note):
    """Send `page`'s console errors, page errors, failed requests and HTTP errors to `note`."""
    page.on("console", lambda msg: note(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: note(f"page error: {exc}"))
    page.on("requestfailed", lambda req: note(f"failed request: {req.url} ({req.failure})"))
    page.on("response", lambda res: note(f"HTTP {res.status}: {res.url}") if res.status >= 400 else None)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium: installed with apt-get (once, quietly) where it is
    missing and we are root on Debian. Skips (fails with CI=true) without one."""
    if not CHROMIUM.exists() and os.name == "posix" and os.geteuid() == 0 and Path("/etc/debian_version").exists():
        env = {**_no_proxy_env(), "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:  # the package lists may be missing or old
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
            subprocess.run(install, env=env, capture_output=True, text=True)
    if not CHROMIUM.exists():
        unavailable(f"no browser: {CHROMIUM} is missing (on Debian as root, `apt-get install chromium` gets it)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    """A headless chromium driven by Playwright (its own browser download is never used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (requirements-dev.txt has it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-proxy-server"])
        yield browser
        browser.close()


def _sphinx_or_skip():
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed (requirements-dev.txt has it)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The runner's report of a quick run of mnist-mlp (stand-in data), made here."""
    run_dir = tmp_path_factory.mktemp("quick-run")
    done = subprocess.run(
        [sys.executable, "-m", "cnn_course", "run", "mnist-mlp", "--quick", "--out", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run_dir


@pytest.fixture(scope="module", params=["quick", "committed"])
def served(request, tmp_path_factory):
    """(base URL, site folder, runs folder) of a built site served on 127.0.0.1:
    "quick" is built from a quick run of mnist-mlp recorded here, "committed"
    from website/runs/."""
    _sphinx_or_skip()
    if request.param == "quick":
        runs = tmp_path_factory.mktemp("runs")
        recorded, skipped = site.record_run(request.getfixturevalue("quick_run"), runs, allow_quick=True)
        assert recorded == ["mnist-mlp"], skipped
    else:
        runs = site.RUNS_DIR
    out = tmp_path_factory.mktemp(f"site-{request.param}") / "site"
    done = _build_cli("build", "--runs", str(runs), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", out, Path(runs), request.param
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def visited(served, browser):
    """Every HTML page of the site, loaded once: {relative path: what was seen}.

    What was seen: console errors, page errors, failed requests (and HTTP
    errors), the absolute URLs of its links, the ids in it, the figures in its
    cells' outputs ((natural width, rendered width, rendered height) each), and
    how many outputs are the note that stands for a figure of dataset images.
    """
    base, out, runs, kind = served
    seen = {}
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    for html in [p for p in pages if not p.startswith("_static/")]:  # the theme's template parts are no pages
        problems = []
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch_page(page, problems.append)
        page.goto(base + html, wait_until="networkidle")
        info = page.evaluate("""() => ({
            links: Array.from(document.querySelectorAll('a[href]'))
                .map(a => ({href: a.href, text: a.textContent.trim()})),
            ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
                .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.name)),
            figures: Array.from(document.querySelectorAll('.cell_output img, .cell_output svg')).map(e => {
                const r = e.getBoundingClientRect();
                return [e.naturalWidth === undefined ? r.width : e.naturalWidth, r.width, r.height];
            }),
            notes: Array.from(document.querySelectorAll('.cell_output'))
                .filter(e => e.textContent.includes('which the repository does not store')).length,
        })""")
        page.close()
        seen[html] = {"problems": problems, **info}
    return seen


def test_every_page_loads_without_errors_or_failed_requests(visited):
    assert "index.html" in visited
    lesson_pages = {path.removesuffix(".ipynb") + ".html" for path in site.LESSONS.values() if path.endswith(".ipynb")}
    assert lesson_pages <= set(visited)
    assert f"{site.SCRIPTS_PAGE}.html" in visited
    problems = {page: seen["problems"] for page, seen in visited.items() if seen["problems"]}
    assert problems == {}


def test_every_figure_renders_and_no_recorded_figure_is_missing(served, visited):
    base, out, runs, kind = served
    rows = site.load_results(runs)
    shown = dropped = 0
    for name, path in site.LESSONS.items():
        if not path.endswith(".ipynb"):
            continue
        figures = visited[path.removesuffix(".ipynb") + ".html"]["figures"]
        assert all(natural > 0 and width > 0 and height > 0 for natural, width, height in figures), (name, figures)
        expected, notes = 0, 0
        if name in rows:  # the page's recorded outputs (answers too), dataset images already notes
            page, _ = site.prepare_lesson(name, path, rows, runs, site.repository_url())
            expected = site.figure_count(page.cells)
            notes = sum(
                o.get("metadata", {}).get("cnn_course") == site.DATASET_IMAGES_TAG
                for c in page.cells
                for o in c.get("outputs", [])
            )
        assert len(figures) >= expected, name
        assert visited[path.removesuffix(".ipynb") + ".html"]["notes"] == notes, name
        shown += len(figures)
        dropped += notes
    if kind == "quick":
        assert shown > 0  # the quick mnist-mlp run draws figures: they really are checked
        assert dropped > 0  # and its digits' figures are notes on the page


def test_every_internal_link_and_anchor_resolves(served, visited, browser):
    base, out, runs, kind = served
    ids = {page: set(seen["ids"]) for page, seen in visited.items()}
    broken = []
    fetched = {}
    request = browser.new_context().request
    for page, seen in visited.items():
        for link in seen["links"]:
            url, fragment = urldefrag(link["href"])
            if not url.startswith(base):
                continue
            target = unquote(urlparse(url).path).lstrip("/") or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if target not in fetched:
                fetched[target] = request.get(url).status
            if fetched[target] != 200:
                broken.append(f"{page}: {link['href']} (HTTP {fetched[target]})")
            elif fragment and fragment not in ids.get(target, set()):
                broken.append(f"{page}: {link['href']} (no #{fragment} there)")
    assert broken == []


def test_launch_links_name_notebooks_of_the_repository(served, visited, browser):
    base, out, runs, kind = served
    request = browser.new_context().request
    for name, path in site.LESSONS.items():
        if not path.endswith(".ipynb"):
            continue
        links = visited[path.removesuffix(".ipynb") + ".html"]["links"]
        colab = [link["href"] for link in links if link["href"].startswith("https://colab.research.google.com/")]
        assert colab, f"{name}: no Colab link"
        for href in colab:  # ours and the theme's launch button
            assert href == site.colab_url(path), href
            assert (REPO / href.split("/blob/main/", 1)[1]).is_file()
        opens = [link for link in links if link["text"] == "Open in Colab"]
        assert [link["href"] for link in opens] == [site.colab_url(path)]
        downloads = [link["href"] for link in links if link["text"] == "Download notebook"]
        assert len(downloads) == 1 and downloads[0].startswith(base) and downloads[0].endswith("/" + Path(path).name)
        response = request.get(downloads[0])
        assert response.status == 200
        assert response.body() == (REPO / path).read_bytes()  # the committed notebook, as Colab opens it


def test_home_page_accuracies_are_the_recorded_ones(served, browser):
    base, out, runs, kind = served
    rows = site.load_results(runs)
    page = browser.new_page()
    page.goto(base + "index.html")
    table = page.evaluate("""() => Array.from(document.querySelectorAll('table tbody tr')).map(
        tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))""")
    page.close()
    assert len(table) == len(site.LESSONS)
    for (name, path), cells in zip(site.LESSONS.items(), table):
        row = rows.get(name)
        accuracy = cells[1]
        if row is None:
            assert accuracy == "not recorded", name
        elif row.get("test_accuracy") is None:
            assert accuracy == "-", name
        else:
            number = re.fullmatch(r"([0-9.]+)%( \(stand-in\))?", accuracy)
            assert number, (name, accuracy)
            assert float(number.group(1)) == round(row["test_accuracy"], 2), name
            assert cells[2] == ("-" if row.get("epochs") is None else str(row["epochs"]))
            assert cells[5] == row["date"]
    if kind == "quick":
        assert table[0][1].endswith("% (stand-in)")  # mnist-mlp's row really holds a number


def test_screenshots_of_the_home_and_cifar10_cnn_pages(served, browser):
    base, out, runs, kind = served
    if kind != "committed":
        pytest.skip("screenshots are of the committed site")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for name, url in (
        ("home", "index.html"),
        ("cifar10-cnn", site.LESSONS["cifar10-cnn"].removesuffix(".ipynb") + ".html"),
    ):
        page.goto(base + url, wait_until="networkidle")
        shot = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    page.close()
