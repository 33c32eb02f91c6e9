"""``aedetect inspect``: one folder of PNGs and an offline index.html looking inside a model.

Pictures: first-layer filters, first-layer activation maps before/after the activation
function, the decoder output before/after its final activation, inputs over
reconstructions, a latent interpolation strip and a 2-D map (PCA or t-SNE) of the latent
codes coloured by label. A picture the model cannot give (interpolation of a model with
skip connections) is one line in the index instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.core.modelfile.file import ModelFile, load_model
from aedetect.data.imageset import ImageSet, float_to_unit
from aedetect.util.text import printable
from aedetect.errors import AedetectError
from aedetect.util.fsutil import new_run_dir
from aedetect.inspect import probe as pr
from aedetect.core.model.codes import encode_set, grid_shape, interpolate, why_no_decode
from aedetect.inspect.html import write_index
from aedetect.core.plots import save_tile_grid
from aedetect.util.progress import progress_bar

log = logging.getLogger("aedetect")

TILE_MIN_SIDE = 32
PICTURES = ("filters", "activations_pre", "activations_post", "decoder_output", "reconstructions",
            "interpolation", "latent_map")


@dataclass
class Picture:
    """One entry of the index: a PNG (or a reason it is missing) and what it shows."""

    name: str
    title: str
    caption: str
    file: str | None = None
    skipped: str | None = None


@dataclass
class InspectResult:
    out: Path
    pictures: list[Picture] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def files(self) -> dict[str, Path]:
        return {p.name: self.out / p.file for p in self.pictures if p.file}


def save_tiles(tiles: Tensor, path: Path, nrow: int | None = None, min_side: int = TILE_MIN_SIDE) -> Path:
    """Tiles (N, C, h, w) in [0, 1] as one grid, near-square unless ``nrow`` is given."""
    return save_tile_grid(tiles, path, nrow=nrow or grid_shape(tiles.shape[0])[1], min_side=min_side)


def load_inspect_data(data: str | None, mf: ModelFile, data_root: str | None = None) -> tuple[ImageSet, str]:
    """DATA for the pictures, defaulting to the model's training data when it is built in.

    Datasets by name use their test split with every class (so the map is coloured by
    class); an MVTec AD folder uses ``test/`` with the defect kind as the class.
    """
    from aedetect.data.sources import (SAMPLE_DATASETS, TORCHVISION_DATASETS, find_images, is_mvtec,
                                       load_digits, load_files, load_torchvision, load_training_data)

    if data is None:
        trained_on = str(mf.training.get("data") or "")
        builtin = trained_on.lower() in (*TORCHVISION_DATASETS, *SAMPLE_DATASETS) or trained_on.startswith("texture:")
        if not (builtin or (trained_on and Path(trained_on).exists())):
            raise AedetectError(f"{mf.path}: trained on {trained_on or 'an in-memory set'!r}, not a built-in "
                                "dataset; give DATA (an image folder or a dataset name)")
        data = trained_on
    cfg = mf.config.data
    root = Path(data)
    if root.exists():
        if is_mvtec(root) and (root / "test").is_dir():
            s = load_files(find_images(root / "test"), cfg, str(root / "test"))
            s.kinds = [Path(p).parent.name for p in s.paths]
            names = sorted(set(s.kinds))
            s.classes = torch.tensor([names.index(k) for k in s.kinds])
            s.labels = torch.tensor([int(k != "good") for k in s.kinds])
            return s, f"{root / 'test'}"
        return load_training_data(data, cfg), str(root)
    key = data.lower()
    if key in TORCHVISION_DATASETS:
        return load_torchvision(key, cfg, train=False, normal_class=None, data_root=data_root), f"{key} (test split)"
    if key == "digits":
        return load_digits(cfg), "digits"
    return load_training_data(data, cfg, data_root=data_root), data


def second_index(images: ImageSet, first: int) -> int:
    """The other end of the interpolation: the next image of a different class, else the next one."""
    n = len(images)
    if images.classes is not None:
        c = int(images.classes[first])
        for k in range(1, n):
            j = (first + k) % n
            if int(images.classes[j]) != c:
                return j
    return (first + 1) % n


MIN_MAP_POINTS = 3  # PCA to 2-D needs two; t-SNE's perplexity (at least 2) must stay below the count


def why_no_map(points: int, values: int) -> str | None:
    """Why the 2-D map of ``points`` codes of ``values`` numbers each cannot be drawn, or None."""
    if points < MIN_MAP_POINTS:
        return f"{points} image(s); a 2-D map needs at least {MIN_MAP_POINTS}"
    if values < 2:
        return f"the codes hold {values} value(s) each; a 2-D map needs at least 2"
    return None


def latent_map(codes: Tensor, colour: Tensor | None, names: list[str] | None, path: Path, method: str,
               title: str) -> Path:
    """Scatter of the codes projected to 2-D by PCA or t-SNE, one colour per class."""
    from aedetect.core.plots import _plt, save_figure

    x = codes.numpy().astype("float64")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        xy = TSNE(2, init="pca", perplexity=perplexity, random_state=0).fit_transform(x)
    else:
        from sklearn.decomposition import PCA

        xy = PCA(2, random_state=0).fit_transform(x)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    if colour is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.7)
    else:
        cmap = plt.get_cmap("tab10" if int(colour.max()) < 10 else "tab20")
        for k in sorted(set(colour.tolist())):
            m = (colour == k).numpy()
            label = names[k] if names and k < len(names) else str(k)
            ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.7, color=cmap(k % cmap.N), label=label)
        ax.legend(markerscale=3, fontsize=8, frameon=False, loc="best")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def inspect_model(model_path: str | Path, data: str | ImageSet | None, out: str | Path | None, *, index: int = 0,
                  index_b: int | None = None, steps: int = 16, n_images: int = 8, tsne: bool = False,
                  max_points: int = 2000, data_root: str | None = None) -> InspectResult:
    """Write every picture for ``model_path`` into the new folder ``out`` (default: a new
    runs/inspect-*) plus index.html."""
    mf = load_model(model_path)
    model, cfg = mf.model, mf.config
    if cfg.model.arch == "none":
        raise AedetectError(f"{printable(str(model_path))}: no network to inspect: this model scores with ImageNet "
                            "features alone (fit trained no autoencoder; --set anomaly.autoencoder=on trains one)")
    if isinstance(data, ImageSet):
        images, source = data, "ImageSet"
    else:
        images, source = load_inspect_data(data, mf, data_root)
    if not 0 <= index < len(images):
        raise AedetectError(f"--index: {index} is outside 0..{len(images) - 1} ({len(images)} images in {source})")
    out = new_run_dir(out, prefix="inspect")
    scaling = cfg.data.scaling
    res = InspectResult(out=out, info={"model": str(model_path), "data": source, "images": len(images),
                                       "index": index, **model.parameter_counts()})

    def img(i: int) -> Tensor:
        return images.to_float(images.images[i:i + 1], scaling)

    def unit(x: Tensor) -> Tensor:
        return float_to_unit(x.float().cpu(), scaling)

    with progress_bar("inspect", total=len(PICTURES)) as bar:
        # 1. first-layer filters
        tiles = pr.filter_tiles(model)
        kind = "weight rows of the first Linear layer, as images" if cfg.model.arch == "mlp" else "first-layer filters"
        res.pictures.append(Picture("filters", "First-layer filters",
                                    f"{tiles.shape[0]} {kind} ({tiles.shape[-2]}x{tiles.shape[-1]}), each scaled to its own min..max",
                                    save_tiles(tiles, out / "filters.png").name))
        bar.advance()
        # 2-3. activations before / after the activation function; decoder output
        x = img(index)
        p_first, p_out, y = pr.probe(model, x)
        assert p_first.before is not None and p_first.after is not None
        pre = pr.channel_tiles(p_first.before)
        post = pr.channel_tiles(p_first.after, ref=p_first.before)
        act = "none" if pr.first_layer(model)[1] is None else cfg.model.activation
        shape = "x".join(map(str, p_first.before.shape[1:]))
        for name, t, when in (("activations_pre", pre, "before"), ("activations_post", post, "after")):
            res.pictures.append(Picture(name, f"First-layer activations {when} the activation ({act})",
                                        f"image {index}: {shape} maps, each channel on the pre-activation's min..max",
                                        save_tiles(t, out / f"{name}.png").name))
        bar.advance()
        bar.advance()
        res.pictures.append(Picture("decoder_output", "Decoder output before and after its final activation",
                                    f"image {index}: input | before {cfg.model.output_activation} (min..max) | after (the reconstruction)",
                                    _decoder_strip(x, p_out, scaling, out / "decoder_output.png").name))
        bar.advance()
        # 4. inputs over reconstructions
        from aedetect.core.plots import save_recon_grid

        xs = images.to_float(images.images[:n_images], scaling)
        with torch.no_grad():
            ys = model(xs)
        save_recon_grid([unit(xs), unit(ys)], out / "reconstructions.png")
        res.pictures.append(Picture("reconstructions", "Inputs over reconstructions",
                                    f"the first {len(xs)} images of {source}", "reconstructions.png"))
        bar.advance()
        # 5. latent interpolation
        j = second_index(images, index) if index_b is None else index_b
        if not 0 <= j < len(images):
            raise AedetectError(f"--index-b: {j} is outside 0..{len(images) - 1}")
        reason = why_no_decode(model)
        pic = Picture("interpolation", f"Latent interpolation, {steps} steps",
                      f"image {index} | {steps} decoded codes from code({index}) to code({j}) | image {j}")
        if reason:
            pic.skipped = f"not drawn: {reason}"
            log.info("interpolation skipped: %s", reason)
        else:
            strip = interpolate(model, x[0], img(j)[0], steps)
            save_tiles(torch.cat([unit(x), unit(strip), unit(img(j))]), out / "interpolation.png", nrow=steps + 2)
            pic.file = "interpolation.png"
        res.pictures.append(pic)
        bar.advance()
        # 6. 2-D map of the latent codes
        sample = images
        if len(images) > max_points:
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:max_points]
            sample = images.subset(keep.sort().values)
        codes = encode_set(model, sample, scaling)
        colour, names, by = _colours(sample)
        method = "tsne" if tsne else "pca"
        pic = Picture("latent_map", f"Latent codes in 2-D ({'t-SNE' if tsne else 'PCA'})",
                      f"{len(sample)} images of {source}{by}")
        why = why_no_map(len(sample), codes.shape[1])
        if why:
            pic.skipped = f"not drawn: {why}"
            log.info("latent map skipped: %s", why)
        else:
            latent_map(codes, colour, names, out / "latent_map.png", method,
                       f"{method.upper()} of {len(sample)} latent codes ({codes.shape[1]} values each){by}")
            pic.file = "latent_map.png"
        res.pictures.append(pic)
        bar.advance()
    write_index(out / "index.html", res.pictures, res.info, cfg.to_dict())
    return res


def _decoder_strip(x: Tensor, p: pr.Probe, scaling: str, path: Path) -> Path:
    """Input | pre-activation output (min..max) | post-activation output, at the input size."""
    assert p.before is not None and p.after is not None
    c, h, w = x.shape[1:]

    def as_image(t: Tensor) -> Tensor:
        t = t.float().cpu()
        t = t.view(1, c, h, w) if t.ndim == 2 else t[..., :h, :w]
        return F.interpolate(t, size=(h, w), mode="nearest") if tuple(t.shape[-2:]) != (h, w) else t

    before = pr.normalize_tiles(as_image(p.before))
    after = float_to_unit(as_image(p.after), scaling)
    return save_tiles(torch.cat([float_to_unit(x.float(), scaling), before, after]), path, nrow=3,
                      min_side=64)


def _colours(images: ImageSet) -> tuple[Tensor | None, list[str] | None, str]:
    if images.classes is not None:
        names = sorted(set(images.kinds)) if images.kinds else None
        return images.classes.long(), names, ", coloured by class"
    if images.labels is not None:
        return images.labels.long(), ["normal", "anomalous"], ", coloured by label"
    return None, None, ""
