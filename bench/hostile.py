"""Hostile inputs through every command: one line per case, how the command took it.

    python bench/hostile.py [--work DIR] [--only SUBSTRING] [--round 1|2|all]

Builds, under DIR (default a new temporary folder), a corpus of bad image files (truncated,
zero-byte, wrong extension, huge declared size, multi-page, animated, non-UTF-8 names, symlink
loops, ...) each in a folder with twelve good digit images, and damaged or crafted model files
(flipped weight byte, edited threshold digit, edited task / activation, huge widths, truncated
header, ...). Then runs ``aedetect fit``, ``score`` and ``denoise`` over every image case and
``aedetect info``, ``score``, ``denoise`` and ``calibrate`` over every model case, each as a
subprocess, and prints:

    case  command  outcome  detail

outcome is one of ``clean error`` (exit != 0, one error line), ``warning and skip`` (exit 0, or
2 = "some files failed" for denoise, and a warning naming the bad file), ``processed`` (exit
0; for an image case the bad file was used: 13 images, not 12), ``ignored silently`` (exit 0,
12 images used, the bad file never mentioned), ``traceback`` (a Python traceback in the
output) or ``timeout``.
The last line counts tracebacks. Zero is the bar.

Round 2 (issue 27) adds the kinds a second probe found: outputs aimed at inputs (an --out that
holds the input, --out inside DATA or --normal-dir, export over its own model, user files that
look like temporaries), names that sanitise alike and a 240-byte name, crafted model files
whose checksum is recomputed (sizes, widths, depth, latent grid, malformed calibration
fields), formula cells in the CSVs, photo metadata through denoise, SIGTERM mid-score, and a
read-only or full --out. Each row also says how many bytes of the user's files changed, and a
crafted model's row the command's peak memory (``os.wait4``) and seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import _hostile_files as hf  # bench/ is on sys.path when this file runs

HERE = Path(__file__).resolve().parent
LEGACY = HERE.parent / "tests" / "fixtures" / "legacy" / "anomaly-digits.safetensors"
TIMEOUT_S = 180


@dataclass
class Outcome:
    case: str
    command: str
    outcome: str
    detail: str
    changed: int = 0  # bytes of the user's files changed, added inside an input tree, or deleted
    peak_mb: float | None = None  # the command's peak resident memory (second-round cases)
    seconds: float | None = None


def digits16() -> list[np.ndarray]:
    """scikit-learn's digits as 16x16 uint8 images (nearest-neighbour upscaled)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return [np.kron(np.rint(im * 255 / 16).astype(np.uint8), np.ones((2, 2), np.uint8)) for im in d.images]


GOOD = 12  # good images beside each bad file


def good_folder(root: Path, images: list[np.ndarray], n: int = GOOD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(images[i]).save(root / f"good{i:02d}.png")
    return root


def _png_bytes(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


# ---- image cases: name -> maker(folder) returning the marker (file name) to look for --------
def image_cases() -> dict[str, Callable[[Path], str]]:
    cam = hf.camera(16, 16)

    def write(name: str, data: bytes) -> Callable[[Path], str]:
        def make(d: Path) -> str:
            (d / name).write_bytes(data)
            return name
        return make

    def call(name: str, fn: Callable[[Path], object]) -> Callable[[Path], str]:
        def make(d: Path) -> str:
            fn(d / name)
            return name
        return make

    def latin1_good(d: Path) -> str:
        hf.latin1_named_png(d, image=cam)
        return "caf\\xe9.png"

    def latin1_bad(d: Path) -> str:
        with open(os.path.join(os.fsencode(d), b"bad\xff.png"), "wb") as fh:
            fh.write(b"\x89PNG\r\n\x1a\ngarbage")
        return "bad\\xff.png"

    def symlink_loop(d: Path) -> str:
        os.symlink("loop_b.png", d / "loop_a.png")
        os.symlink("loop_a.png", d / "loop_b.png")
        return "loop_a.png"

    def broken_link(d: Path) -> str:
        os.symlink("nowhere.png", d / "dangling.png")
        return "dangling.png"

    def dir_loop(d: Path) -> str:
        (d / "sub").mkdir()
        os.symlink("..", d / "sub" / "up")
        return "up"

    def folder_named_png(d: Path) -> str:
        (d / "folder.png").mkdir()
        return "folder.png"

    def unreadable(d: Path) -> str:
        (d / "secret.png").write_bytes(_png_bytes(cam))
        os.chmod(d / "secret.png", 0)
        return "secret.png"

    png, jpg = _png_bytes(cam), _png_bytes(cam, "JPEG")
    return {
        "truncated PNG": write("trunc.png", png[: len(png) // 2]),
        "truncated JPEG": write("trunc.jpg", jpg[: len(jpg) // 2]),
        "zero-byte PNG": write("empty.png", b""),
        "JPEG named .png": write("really_jpeg.png", jpg),
        "text named .jpg": write("notes.jpg", b"just some text\n"),
        "PNG bad CRC": write("badcrc.png", png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]),
        "1x1 image": write("tiny.png", _png_bytes(cam[:1, :1])),
        "16-bit RGB PNG": call("rgb16.png", lambda p: _write_png16(p, cam)),
        "TIFF declaring 30000x30000": call("big.tif", hf.huge_tiff),
        "16-bit PNG declaring 30000x30000": call("big16.png", hf.huge_png),
        "8-bit PNG declaring 30000x30000": call("big8.png", lambda p: hf.huge_png(p, bit_depth=8, colour_type=0)),
        "3-page TIFF": call("stack3.tif", lambda p: hf.multipage_tiff(p, 3)),
        "4-page TIFF": call("stack4.tif", lambda p: hf.multipage_tiff(p, 4)),
        "2-page TIFF": call("stack2.tif", lambda p: hf.multipage_tiff(p, 2)),
        "animated PNG": call("anim.png", hf.animated),
        "animated WebP": call("anim.webp", hf.animated),
        "non-UTF-8 name (good)": latin1_good,
        "non-UTF-8 name (corrupt)": latin1_bad,
        "symlink loop": symlink_loop,
        "broken symlink": broken_link,
        "folder symlink loop": dir_loop,
        "folder named x.png": folder_named_png,
        "unreadable file (mode 000)": unreadable,
        "GIF": call("still.gif", lambda p: Image.fromarray(cam).save(p)),
    }


def _write_png16(path: Path, cam: np.ndarray) -> None:
    import png

    rgb = np.repeat(cam[:, :, None].astype(np.uint16) * 257, 3, 2)
    with open(path, "wb") as fh:
        png.Writer(16, 16, greyscale=False, bitdepth=16).write(fh, rgb.reshape(16, -1))


# ---- model cases: name -> maker(src anomaly model, dst) -------------------------------------
def model_cases(work: Path) -> dict[str, Callable[[Path, Path], Path]]:
    def huge(m: dict) -> None:  # type: ignore[type-arg]
        m["config"]["model"]["widths"] = [4096] * len(m["config"]["model"]["widths"])

    return {
        "intact model": lambda s, d: Path(shutil.copy(s, d)),
        "legacy format-1 model": lambda s, d: Path(shutil.copy(LEGACY, d)),
        "flipped weight byte": hf.flip_weight_byte,
        "edited threshold digit": hf.edit_threshold_digit,
        "edited task": lambda s, d: hf.edit_header_text(s, d, b'\\"task\\": \\"anomaly\\"', b'\\"task\\": \\"denoise\\"'),
        "edited activation": lambda s, d: hf.edit_header_text(s, d, b'\\"activation\\": \\"relu\\"',
                                                              b'\\"activation\\": \\"gelu\\"'),
        "huge widths (4096)": lambda s, d: hf.rewrite_meta(s, d, huge),
        "format version 99": lambda s, d: hf.rewrite_meta(s, d, lambda m: m.__setitem__("format_version", 99)),
        "digest key deleted": lambda s, d: hf.rewrite_meta(s, d, lambda m: m.pop("record_sha256", None)),
        "truncated header": lambda s, d: hf.truncate(s, d, 100),
        "truncated data": lambda s, d: hf.truncate(s, d, -500),
        "zero-byte model": lambda s, d: hf.truncate(s, d, 0),
        "header length huge": lambda s, d: _huge_length(s, d),
        "a PNG named .safetensors": lambda s, d: _write_bytes(d, _png_bytes(hf.camera())),
        "missing model file": lambda s, d: d,
    }


def _huge_length(src: Path, dst: Path) -> Path:
    raw = bytearray(src.read_bytes())
    raw[:8] = (1 << 40).to_bytes(8, "little")
    dst.write_bytes(bytes(raw))
    return dst


def _write_bytes(dst: Path, data: bytes) -> Path:
    dst.write_bytes(data)
    return dst


# ---- running and judging --------------------------------------------------------------------
def aedetect(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("aedetect") or sys.executable
    cmd = [exe] + ([] if exe != sys.executable else ["-m", "aedetect"]) + [os.fsencode(str(a)) if isinstance(a, Path) else a for a in args]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, env={**os.environ, "MPLBACKEND": "Agg"})
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -9, e.stdout or b"", (e.stderr or b"") + b"\n<timeout>")


def judge(case: str, command: str, r: subprocess.CompletedProcess[bytes], marker: str | None,
          work: Path, taken: int | None = None) -> Outcome:
    out = (r.stdout + b"\n" + r.stderr).decode("utf-8", "backslashreplace").replace(f"{work}/", "")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    flat = re.sub(r"\s+", "", out)
    if "<timeout>" in out:
        return Outcome(case, command, "timeout", f"over {TIMEOUT_S} s")
    if "Traceback (most recent call last)" in out:
        last = next((line for line in reversed(lines) if re.match(r"^[A-Za-z_.]+(Error|Exception|Interrupt)\b", line)), lines[-1])
        return Outcome(case, command, "traceback", last[:110])
    errors = [line for line in lines if line.startswith("error:")]
    ok = r.returncode == 0 or (command == "denoise" and r.returncode == 2)
    if not ok:
        return Outcome(case, command, "clean error", (errors[0] if errors else f"exit {r.returncode}: {lines[-1] if lines else ''}")[:110])
    said = [line for line in lines if (line.startswith("warning:") or line.startswith("failed"))
            and (marker is None or re.sub(r"\s+", "", marker) in re.sub(r"\s+", "", line))]
    if marker is not None and not said and marker in flat and r.returncode == 2:
        said = ["(named among the failures)"]
    if said:
        return Outcome(case, command, "warning and skip" if marker is not None else "processed", said[0][:110])
    if marker is not None and taken is not None and taken == GOOD:  # the bad file was left out, unsaid
        return Outcome(case, command, "ignored silently", f"{taken} images used, the bad one not mentioned")
    return Outcome(case, command, "processed", f"exit {r.returncode}" + (f", {taken} images" if taken else ""))


def images_taken(command: str, r: subprocess.CompletedProcess[bytes], runs: Path) -> int | None:
    """How many images a command used: fit's 'on N images', denoise's 'done N', score's rows."""
    out = (r.stdout + r.stderr).decode("utf-8", "backslashreplace")
    if command == "fit" and (m := re.search(r"on (\d+) images", out)):
        return int(m.group(1))
    if command == "denoise" and (m := re.search(r"done (\d+), skipped", out)):
        return int(m.group(1))
    if command == "score" and (runs / "score" / "scores.csv").is_file():
        rows = (runs / "score" / "scores.csv").read_text(encoding="utf-8").splitlines()[1:]
        return sum(1 for row in rows if row.split(",")[1])  # rows with a score
    return None


def run_image_case(work: Path, case: str, make: Callable[[Path], str], images: list[np.ndarray],
                   anomaly: Path, denoiser: Path) -> list[Outcome]:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    folder = good_folder(work / "images" / slug, images)
    marker = make(folder)
    runs = work / "runs" / slug
    calls = {
        "fit": ("fit", folder, "--preset", "small", "--epochs", "1", "--size", "16", "--out", runs / "fit"),
        "score": ("score", anomaly, folder, "--out", runs / "score", "--all-heatmaps"),
        "denoise": ("denoise", denoiser, folder, "--out", runs / "denoise"),
    }
    results = []
    for command, args in calls.items():
        r = aedetect(*args)
        results.append(judge(case, command, r, marker, work, images_taken(command, r, runs)))
    return results


def run_model_case(work: Path, case: str, make: Callable[[Path, Path], Path], anomaly: Path,
                   folder: Path) -> list[Outcome]:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    model = make(anomaly, work / "models" / f"{slug}.safetensors")
    runs = work / "runs" / f"model-{slug}"
    return [
        judge(case, "info", aedetect("info", model), None, work),
        judge(case, "score", aedetect("score", model, folder, "--out", runs / "score"), None, work),
        judge(case, "denoise", aedetect("denoise", model, folder, "--out", runs / "denoise"), None, work),
        judge(case, "calibrate", aedetect("calibrate", model, "digits", "--normal-class", "0",
                                          "--out", runs / "calibrated.safetensors"), None, work),
    ]


def prepare(work: Path, images: list[np.ndarray]) -> tuple[Path, Path, Path]:
    """An anomaly model trained on 40 zeros (2 epochs), an untrained small denoise U-Net, and a
    clean folder of good digits for the model cases."""
    import torch

    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.modelfile.file import save_model
    from aedetect.core.presets import build_config
    from sklearn.datasets import load_digits

    target = load_digits().target
    zeros = [im for im, t in zip(images, target) if t == 0][:40]
    train = good_folder(work / "train-zeros", zeros, n=len(zeros))
    r = aedetect("fit", train, "--preset", "small", "--epochs", "2", "--size", "16", "--out", work / "anomaly")
    if r.returncode != 0:
        raise SystemExit(f"training the anomaly model failed:\n{r.stderr.decode(errors='replace')}")
    cfg = build_config("denoise-unet", overrides={"model": {"widths": [8, 16], "convs_per_level": 1}})
    torch.manual_seed(0)
    denoiser = save_model(work / "denoiser.safetensors", ConvAutoencoder(cfg.model), cfg)
    rgb = build_config("denoise-unet", overrides={"data": {"channels": 3}, "model": {"widths": [8, 16], "convs_per_level": 1}})
    torch.manual_seed(0)
    save_model(work / "denoiser-rgb.safetensors", ConvAutoencoder(rgb.model), rgb)
    return work / "anomaly" / "model.safetensors", denoiser, good_folder(work / "clean", images)


# ---- second round (issue 27): output paths, names, crafted models, CSV, metadata, signal, disk
@dataclass
class Context:
    work: Path
    images: list[np.ndarray]
    anomaly: Path
    denoiser: Path
    clean: Path


def aedetect_measured(*args: str | Path, timeout: float = TIMEOUT_S) -> tuple[subprocess.CompletedProcess[bytes], float, float]:
    """:func:`aedetect` with the child's own peak resident memory (``os.wait4``'s rusage) and
    wall time: (result, seconds, peak MB)."""
    exe = shutil.which("aedetect") or sys.executable
    cmd = [exe] + ([] if exe != sys.executable else ["-m", "aedetect"]) + [os.fsencode(str(a)) if isinstance(a, Path) else a for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "MPLBACKEND": "Agg"})
        timed_out = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read() + (b"\n<timeout>" if timed_out else b"")
    return subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr), seconds, usage.ru_maxrss / 1024


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``roots`` (links not followed): size and SHA-256."""
    import hashlib

    seen: dict[str, tuple[int, str]] = {}
    for root in roots:
        for dirpath, _, files in os.walk(root, followlinks=False):
            for name in files:
                f = Path(dirpath) / name
                if f.is_file() and not f.is_symlink():
                    data = f.read_bytes()
                    seen[str(f)] = (len(data), hashlib.sha256(data).hexdigest())
    return seen


def changed_bytes(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> int:
    """Bytes of files changed or deleted, and of files added inside the watched trees."""
    n = sum(size for f, (size, digest) in before.items() if after.get(f, (0, ""))[1] != digest)
    return n + sum(size for f, (size, _) in after.items() if f not in before)


def _digit_folder(root: Path, images: list[np.ndarray], n: int = GOOD, names: tuple[str, ...] = ()) -> Path:
    good_folder(root, images, n)
    for i, name in enumerate(names):
        Image.fromarray(images[100 + i]).save(root / name)
    return root


def case_output_paths(ctx: Context, case: str) -> list[Outcome]:
    """Outputs aimed at inputs: --out a parent of the input, --out inside DATA or --normal-dir,
    export over its own model, and user files that look like temporaries below --out."""
    w = ctx.work / "r2-paths"
    rows = []
    dp = w / "dp"
    (dp / "in" / "in").mkdir(parents=True)
    Image.fromarray(ctx.images[1]).save(dp / "in" / "x.png")
    Image.fromarray(ctx.images[2]).save(dp / "in" / "in" / "x.png")
    before = snapshot(dp / "in")
    r = aedetect("denoise", ctx.denoiser, dp / "in", "--out", dp, "--overwrite")
    o = judge(case + ": --out holds the input", "denoise", r, None, ctx.work)
    o.changed = changed_bytes(before, snapshot(dp / "in"))
    rows.append(o)

    data = _digit_folder(w / "data", ctx.images)
    before = snapshot(data)
    r = aedetect("fit", data, "--preset", "small", "--epochs", "1", "--size", "16", "--out", data / "run1")
    o = judge(case + ": --out inside DATA", "fit", r, None, ctx.work)
    o.changed = changed_bytes(before, snapshot(data))
    rows.append(o)

    normal, abnormal = _digit_folder(w / "good", ctx.images, 4), _digit_folder(w / "bad", ctx.images[20:], 4)
    before = snapshot(normal)
    r = aedetect("score", ctx.anomaly, w / "none", "--normal-dir", normal, "--abnormal-dir", abnormal,
                 "--out", normal / "run")
    o = judge(case + ": --out inside --normal-dir", "score", r, None, ctx.work)
    o.changed = changed_bytes(before, snapshot(normal))
    rows.append(o)

    model = Path(shutil.copy(ctx.anomaly, w / "v.safetensors"))
    before = snapshot(model.parent)
    r = aedetect("export", model, "--out", model, "--overwrite")
    o = judge(case + ": export --out is the model", "export", r, None, ctx.work)
    o.changed = changed_bytes({k: v for k, v in before.items() if k == str(model)},
                              {k: v for k, v in snapshot(model.parent).items() if k == str(model)})
    rows.append(o)

    out = w / "out"
    (out / "deep").mkdir(parents=True)
    dead = _dead_pid()
    mine = [out / ".thesis.abcd1234.tmp", out / "deep" / f".notes.{dead}.zz9yy8xx.tmp.txt"]
    for f in mine:
        f.write_text("my notes\n")
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    before = snapshot(out)
    r = aedetect("denoise", ctx.denoiser, _digit_folder(w / "noisy", ctx.images, 3), "--out", out)
    o = judge(case + ": user files like temporaries", "denoise", r, None, ctx.work)
    o.changed = changed_bytes({k: v for k, v in before.items() if Path(k) in mine},
                              {k: v for k, v in snapshot(out).items() if Path(k) in mine})
    rows.append(o)
    return rows


def _dead_pid() -> int:
    p = subprocess.Popen(["sleep", "60"])
    p.kill()
    p.wait()
    return p.pid


def case_names(ctx: Context, case: str) -> list[Outcome]:
    """Names that sanitise alike, and a 240-byte name: one heat map each, every file denoised."""
    import _hostile_files as hf

    names = (*hf.COLLIDING_NAMES, hf.LONG_NAME)
    folder = _digit_folder(ctx.work / "r2-names" / "in", ctx.images, GOOD, names)
    runs = ctx.work / "r2-names"
    r = aedetect("score", ctx.anomaly, folder, "--out", runs / "score", "--all-heatmaps")
    o = judge(case, "score", r, None, ctx.work)
    maps = len(list((runs / "score" / "heatmaps").rglob("*.png"))) if (runs / "score" / "heatmaps").is_dir() else 0
    if o.outcome == "processed":
        o.detail = f"{images_taken('score', r, runs)} images scored, {maps} heat maps"
        if maps != GOOD + len(names):
            o.outcome = "wrong output"
    r = aedetect("denoise", ctx.denoiser, folder, "--out", runs / "denoise")
    d = judge(case, "denoise", r, None, ctx.work)
    done = images_taken("denoise", r, runs)
    if d.outcome in ("processed",) or r.returncode in (0, 2):
        d.detail = f"{done} of {GOOD + len(names)} denoised (exit {r.returncode})"
        d.outcome = "processed" if done == GOOD + len(names) else "wrong output"
    return [o, d]


def crafted_models() -> dict[str, Callable[[Path, Path], Path]]:
    """Model files an attacker makes from a real one; every checksum recomputed unless said."""
    import _hostile_files as hf

    def setting(**kv: object) -> Callable[[dict], None]:  # type: ignore[type-arg]
        def edit(m: dict) -> None:  # type: ignore[type-arg]
            m["calibration"].setdefault("settings", {}).update(kv)
        return edit

    def cal(key: str, value: object | None) -> Callable[[dict], None]:  # type: ignore[type-arg]
        def edit(m: dict) -> None:  # type: ignore[type-arg]
            if value is None:
                m["calibration"].pop(key, None)
            else:
                m["calibration"][key] = value
        return edit

    def knn(bank: dict) -> Callable[[dict], None]:  # type: ignore[type-arg]
        def edit(m: dict) -> None:  # type: ignore[type-arg]
            m["calibration"].setdefault("settings", {}).update(latent="knn")
            m["calibration"].update(latent_bank=bank, recon_scale=1.0, latent_scale=1.0)
        return edit

    def backbone(m: dict) -> None:  # type: ignore[type-arg]
        m["calibration"].setdefault("settings", {}).update(map="pretrained")
        m["calibration"].update(feature_bank=hf.float16_bank(8, 176),
                                pretrained_backbone={"safetensors_base64": "AAAAAAAAAAA="})

    model = lambda **kv: (lambda m: m["config"]["model"].update(kv))  # noqa: E731
    data = lambda **kv: (lambda m: m["config"]["data"].update(kv))  # noqa: E731
    crafted = {
        "intact (reference)": lambda m: None,  # the floor: import, load and score an intact copy
        "data.size 8000x8000": data(size=[8000, 8000]),
        "data.size 1e6 x 1e6": data(size=[1000000, 1000000]),
        "widths [1] x 24": model(widths=[1] * 24),
        "convs_per_level 30000": model(convs_per_level=30000),
        "latent_grid 3000": setting(latent="knn", latent_source="features", latent_grid=3000),
        "pixel_threshold missing": cal("pixel_threshold", None),
        "spread 'x'": cal("spread", "x"),
        "latent bank misshapen": knn(hf.float16_bank(10, 8, nbytes=70)),
        "latent bank not base64": knn({"shape": [2, 2], "float16_base64": "@@@@"}),
        "backbone garbage bytes": backbone,
        "settings.map unknown": setting(map="nope"),
    }
    cases: dict[str, Callable[[Path, Path], Path]] = {
        f"crafted: {k}": (lambda e: lambda s, d: hf.craft_meta(s, d, e))(e) for k, e in crafted.items()}
    cases["crafted: convs 30000, old checksum"] = lambda s, d: hf.rewrite_meta(
        s, d, lambda m: m["config"]["model"].__setitem__("convs_per_level", 30000))
    return cases


def run_crafted(ctx: Context, case: str, make: Callable[[Path, Path], Path]) -> list[Outcome]:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    model = make(ctx.anomaly, ctx.work / "models" / f"{slug}.safetensors")
    runs = ctx.work / "runs" / f"r2-{slug}"
    calls = {
        "info": ("info", model),
        "score": ("score", model, ctx.clean, "--out", runs / "score"),
        "denoise": ("denoise", model, ctx.clean, "--out", runs / "denoise"),
        "calibrate": ("calibrate", model, "digits", "--normal-class", "0", "--out", runs / "c.safetensors"),
        "export": ("export", model, "--out", runs / "m.onnx"),
    }
    rows = []
    for command, args in calls.items():
        r, seconds, peak = aedetect_measured(*args)
        o = judge(case, command, r, None, ctx.work)
        o.peak_mb, o.seconds = peak, seconds
        rows.append(o)
    return rows


def case_csv(ctx: Context, case: str) -> list[Outcome]:
    """Formula file names and an MVTec defect folder named like a command: scores.csv and
    denoise_metrics.csv cells that a spreadsheet would run."""
    import csv

    import _hostile_files as hf

    w = ctx.work / "r2-csv"
    cat = w / "cat"
    _digit_folder(cat / "train" / "good", ctx.images, 4)
    _digit_folder(cat / "test" / "good", ctx.images[40:], 2)
    _digit_folder(cat / "test" / hf.FORMULA_KIND, ctx.images[60:], 0, hf.FORMULA_NAMES)

    def live(path: Path) -> int:
        with open(path, encoding="utf-8", newline="") as fh:
            return sum(cell.startswith(("=", "+", "@", "\t", "\r")) or (cell.startswith("-") and not re.match(
                r"^-[\d.]+(e[+-]?\d+)?$", cell)) for row in csv.reader(fh) for cell in row)

    rows = []
    r = aedetect("score", ctx.anomaly, cat, "--out", w / "score", "--no-report")
    o = judge(case, "score", r, None, ctx.work)
    if (w / "score" / "scores.csv").is_file():
        n = live(w / "score" / "scores.csv")
        o.detail, o.outcome = f"{n} live formula cell(s) in scores.csv", ("processed" if n == 0 else "formula cells")
    rows.append(o)
    src, ref = _digit_folder(w / "noisy", ctx.images, 0, hf.FORMULA_NAMES), _digit_folder(w / "ref", ctx.images, 0, hf.FORMULA_NAMES)
    r = aedetect("denoise", ctx.denoiser, src, "--out", w / "denoise", "--reference", ref)
    o = judge(case, "denoise", r, None, ctx.work)
    if (w / "denoise" / "denoise_metrics.csv").is_file():
        n = live(w / "denoise" / "denoise_metrics.csv")
        o.detail, o.outcome = f"{n} live formula cell(s) in denoise_metrics.csv", ("processed" if n == 0 else "formula cells")
    rows.append(o)
    return rows


def case_metadata(ctx: Context, case: str) -> list[Outcome]:
    """A JPEG and a PNG with EXIF orientation 6, an ICC profile and 300 DPI, a lossless WebP."""
    import _hostile_files as hf

    w = ctx.work / "r2-meta"
    src = w / "in"
    src.mkdir(parents=True)
    for name in ("p.jpg", "p.png"):
        hf.exif_photo(src / name)
    hf.lossless_webp(src / "l.webp")
    r = aedetect("denoise", ctx.work / "denoiser-rgb.safetensors", src, "--out", w / "out")
    o = judge(case, "denoise", r, None, ctx.work)
    lost = []
    for name in ("p.jpg", "p.png"):
        f = w / "out" / name
        if not f.is_file():
            lost.append(f"{name} missing")
            continue
        with Image.open(f) as im:
            if im.getexif().get(0x0112) != 6:
                lost.append(f"{name} orientation")
            if not im.info.get("icc_profile"):
                lost.append(f"{name} ICC")
            if round(im.info.get("dpi", (0, 0))[0]) != 300:
                lost.append(f"{name} DPI")
    if not (w / "out" / "l.webp").is_file() or b"VP8L" not in (w / "out" / "l.webp").read_bytes()[:4096]:
        lost.append("l.webp lossless")
    o.outcome = "processed" if not lost and r.returncode == 0 else "metadata lost"
    o.detail = "EXIF orientation, ICC, DPI and lossless WebP kept" if not lost else "lost: " + ", ".join(lost)
    return [o]


def case_signal(ctx: Context, case: str) -> list[Outcome]:
    """SIGTERM to a score run once it has claimed its folder: exit code, temporary files left."""
    import signal

    w = ctx.work / "r2-signal"
    folder = good_folder(w / "in", ctx.images, 400)
    out = w / "out"
    exe = shutil.which("aedetect") or sys.executable
    cmd = [exe] + ([] if exe != sys.executable else ["-m", "aedetect"]) + ["score", str(ctx.anomaly), str(folder),
                                                                            "--out", str(out), "--all-heatmaps"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "MPLBACKEND": "Agg"})
    t0 = time.perf_counter()
    while not (out / "heatmaps").is_dir() and p.poll() is None and time.perf_counter() - t0 < TIMEOUT_S:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=TIMEOUT_S)
    r = subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)
    o = judge(case, "score", r, None, ctx.work)
    left = [f.name for f in out.rglob("*") if ".tmp" in f.name] if out.is_dir() else []
    o.detail = f"exit {p.returncode}, {len(left)} temporary file(s) left, scores.csv {'written' if (out / 'scores.csv').exists() else 'absent'}"
    o.outcome = "clean stop" if p.returncode in (130, 143) and not left else "dirty stop"
    return [o]


def case_disk(ctx: Context, case: str) -> list[Outcome]:
    """denoise into a read-only --out (root without CAP_DAC_OVERRIDE, as any user is) and into a
    full one (a 64 KB tmpfs, where mounting is allowed): one line, not a line per file."""
    w = ctx.work / "r2-disk"
    folder = good_folder(w / "in", ctx.images, 60)
    rows = []
    ro = w / "readonly"
    ro.mkdir(parents=True)
    ro.chmod(0o555)
    args = ["denoise", str(ctx.denoiser), str(folder), "--out", str(ro)]
    exe = shutil.which("aedetect") or sys.executable
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 and shutil.which("setpriv") else []
    r = subprocess.run(drop + [exe] + args, capture_output=True, timeout=TIMEOUT_S)
    o = judge(case + ": read-only --out", "denoise", r, None, ctx.work)
    o.detail = f"exit {r.returncode}, {len([x for x in r.stderr.splitlines() if x.strip()])} line(s) on stderr: " + o.detail
    rows.append(o)
    full = w / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], capture_output=True).returncode == 0
    if mounted:
        try:
            r = subprocess.run([exe, "denoise", str(ctx.denoiser), str(folder), "--out", str(full)],
                               capture_output=True, timeout=TIMEOUT_S)
            o = judge(case + ": full --out", "denoise", r, None, ctx.work)
            o.detail = f"exit {r.returncode}, {len([x for x in r.stderr.splitlines() if x.strip()])} line(s) on stderr: " + o.detail
        finally:
            subprocess.run(["umount", str(full)], capture_output=True)
    else:
        o = Outcome(case + ": full --out", "denoise", "not measured", "no tmpfs mount allowed here")
    rows.append(o)
    return rows


def second_round_cases() -> dict[str, Callable[[Context, str], list[Outcome]]]:
    cases: dict[str, Callable[[Context, str], list[Outcome]]] = {
        "output path": case_output_paths,
        "names (colliding, 240 bytes)": case_names,
        "CSV formula cells": case_csv,
        "photo metadata": case_metadata,
        "SIGTERM mid-score": case_signal,
        "disk": case_disk,
    }
    for name, make in crafted_models().items():
        cases[name] = (lambda m: lambda ctx, case: run_crafted(ctx, case, m))(make)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder to build in (default: a new temporary one)")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this (A|B: either)")
    ap.add_argument("--skip", default="", help="leave out the cases whose name contains this (A|B: either)")
    ap.add_argument("--round", choices=("1", "1-images", "1-models", "2", "all"), default="all",
                    help="1: issue 11's bad files and damaged models (1-images, 1-models: one half); 2: issue "
                         "27's kinds (output paths, names, crafted models, CSV, metadata, signal, read-only/full "
                         "disk); all: both")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="aedetect-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    images = digits16()
    anomaly, denoiser, clean = prepare(work, images)
    print(f"{'case':34} {'command':10} {'outcome':17} detail", flush=True)
    results: list[Outcome] = []
    jobs: list[tuple[str, str, Callable[..., object]]] = []
    if args.round in ("1", "1-images", "all"):
        jobs += [("image", c, m) for c, m in image_cases().items()]
    if args.round in ("1", "1-models", "all"):
        jobs += [("model", c, m) for c, m in model_cases(work).items()]
    if args.round in ("2", "all"):
        jobs += [("second", c, m) for c, m in second_round_cases().items()]
    (work / "models").mkdir(exist_ok=True)
    ctx = Context(work, images, anomaly, denoiser, clean)
    for kind, case, make in jobs:
        if (args.only and not any(x in case for x in args.only.split("|"))) or (
                args.skip and any(x in case for x in args.skip.split("|"))):
            continue
        if kind == "image":
            rows = run_image_case(work, case, make, images, anomaly, denoiser)  # type: ignore[arg-type]
        elif kind == "model":
            rows = run_model_case(work, case, make, anomaly, clean)  # type: ignore[arg-type]
        else:
            rows = make(ctx, case)  # type: ignore[assignment]
        for o in rows:
            extra = "" if o.peak_mb is None else f" [{o.peak_mb:.0f} MB peak, {o.seconds:.1f} s]"
            print(f"{o.case:34} {o.command:10} {o.outcome:17} {o.detail}{extra}"
                  + (f" [{o.changed} user bytes changed]" if o.changed else ""), flush=True)
        results += rows
    n_tb = sum(o.outcome == "traceback" for o in results)
    measured = [o for o in results if o.peak_mb is not None]
    print(f"{len(results)} runs, {n_tb} traceback(s), {sum(o.outcome == 'timeout' for o in results)} timeout(s), "
          f"{sum(o.changed for o in results)} bytes of user files changed"
          + (f", crafted models: at most {max(o.peak_mb for o in measured):.0f} MB peak and "  # type: ignore[type-var]
             f"{max(o.seconds for o in measured):.1f} s" if measured else "")  # type: ignore[type-var]
          + f"; work folder {work}")


if __name__ == "__main__":
    main()
