"""Hostile inputs through every command: one line per case, how the command took it.

    python bench/hostile.py [--work DIR] [--only SUBSTRING]

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
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
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

    from aedetect.core.cae import ConvAutoencoder
    from aedetect.core.modelfile import save_model
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
    return work / "anomaly" / "model.safetensors", denoiser, good_folder(work / "clean", images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder to build in (default: a new temporary one)")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="aedetect-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    images = digits16()
    anomaly, denoiser, clean = prepare(work, images)
    print(f"{'case':34} {'command':10} {'outcome':17} detail", flush=True)
    results: list[Outcome] = []
    jobs = [("image", c, m) for c, m in image_cases().items()] + [("model", c, m) for c, m in model_cases(work).items()]
    (work / "models").mkdir(exist_ok=True)
    for kind, case, make in jobs:
        if args.only and args.only not in case:
            continue
        rows = (run_image_case(work, case, make, images, anomaly, denoiser) if kind == "image"
                else run_model_case(work, case, make, anomaly, clean))
        for o in rows:
            print(f"{o.case:34} {o.command:10} {o.outcome:17} {o.detail}", flush=True)
        results += rows
    n_tb = sum(o.outcome == "traceback" for o in results)
    print(f"{len(results)} runs, {n_tb} traceback(s), {sum(o.outcome == 'timeout' for o in results)} timeout(s); work folder {work}")


if __name__ == "__main__":
    main()
