"""Small helpers every part of the kit uses: range conversion, image files, meters, seeds,
config lookups and file hashes.

``convert_image(img, source, target)`` is THE one place where pixel ranges change (as in
sgrvinod's SRGAN tutorial, which this kit follows). The ranges in play:

- LR inputs of every SR network: float ``[0, 1]``
- SRResNet output and HR targets during SRGAN training: float ``[-1, 1]`` (the paper)
- the truncated VGG19 of the content loss: ``imagenet-norm`` (ImageNet mean/std)
- metrics and files: ``[0, 255]`` / uint8

Image files are read with :func:`load_image`, which always gives an ``H x W x 3`` uint8 array
(see its docstring for how grayscale, alpha, palette, 16-bit and CMYK files are converted).
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

SOURCES = ("pil", "[0, 1]", "[-1, 1]", "[0, 255]")
TARGETS = ("pil", "[0, 1]", "[-1, 1]", "[0, 255]", "imagenet-norm", "y-channel")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# MATLAB rgb2ycbcr, luma row (ITU-R BT.601, studio range): for R, G, B in [0, 1],
# Y = 16 + 65.481 R + 128.553 G + 24.966 B, so Y lies in [16, 235].
YCBCR_Y_WEIGHTS = (65.481, 128.553, 24.966)
YCBCR_Y_OFFSET = 16.0
# The same luma row at full range (divided by 219): 0.299, 0.587, 0.114, as PIL's convert("L").
LUMA_601 = np.asarray(YCBCR_Y_WEIGHTS) / 219.0


def convert_image(img, source: str, target: str):
    """Convert an image between the kit's ranges: the one place where ranges change.

    Args:
        img: a PIL image (``source='pil'``) or a tensor ``(C, H, W)`` or ``(N, C, H, W)``.
            Float tensors in the declared range; ``'[0, 255]'`` also accepts uint8 tensors.
        source: one of ``'pil'``, ``'[0, 1]'``, ``'[-1, 1]'``, ``'[0, 255]'``.
        target: one of ``'pil'``, ``'[0, 1]'``, ``'[-1, 1]'``, ``'[0, 255]'``,
            ``'imagenet-norm'``, ``'y-channel'``.

    Returns:
        - ``'pil'``: an RGB (or L for one channel) PIL image from a ``(C, H, W)`` tensor; values
          are rounded to the nearest integer (torchvision's ``to_pil_image`` truncates instead).
        - ``'[0, 1]'``, ``'[-1, 1]'``, ``'[0, 255]'``: a float tensor of the same shape (not
          rounded or clamped: values outside the source range map outside the target range).
        - ``'imagenet-norm'``: ``(x - mean) / std`` per channel with the ImageNet statistics, for
          ``(3, H, W)`` and ``(N, 3, H, W)`` tensors (the input the VGG19 loss network expects).
          Always computed in float32 at least (float16/bfloat16 inputs give float32): under
          autocast the SR batch is bfloat16 and the HR batch float32, and both must meet the
          same constants, or the content loss sees a colour offset that is only rounding.
        - ``'y-channel'``: the luma Y of MATLAB's ``rgb2ycbcr`` as float in ``[16, 235]``
          (not rounded), shape ``(H, W)`` or ``(N, H, W)``. Unlike the course template, no border
          is cropped here: the metrics shave their own border, visibly.

    Float tensors keep their dtype (except ``'imagenet-norm'``, above) and device; PIL sources
    become float32 ``(C, H, W)`` tensors (a gray image gives one channel; other modes are
    converted to RGB by :func:`load_image`'s rules).
    """
    if source not in SOURCES:
        raise ValueError(f"convert_image: unknown source {source!r}; expected one of {SOURCES}")
    if target not in TARGETS:
        raise ValueError(f"convert_image: unknown target {target!r}; expected one of {TARGETS}")

    # 1. source -> float tensor in [0, 1]
    if source == "pil":
        if not isinstance(img, Image.Image):
            raise TypeError(f"convert_image: source 'pil' needs a PIL image, got {type(img).__name__}")
        array = pil_to_array(img, keep_gray=True)       # the same mode rules as load_image
        x = torch.from_numpy(array).float().div_(255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    else:
        if not torch.is_tensor(img):
            raise TypeError(f"convert_image: source {source!r} needs a tensor, got {type(img).__name__}")
        if img.ndim not in (3, 4):
            raise ValueError(f"convert_image: expected a (C, H, W) or (N, C, H, W) tensor, got shape {tuple(img.shape)}")
        if not img.is_floating_point() and not (source == "[0, 255]" and img.dtype == torch.uint8):
            raise TypeError(f"convert_image: source {source!r} needs a float tensor, got {img.dtype}")
        x = img if img.is_floating_point() else img.float()
        if target == "imagenet-norm" and x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()                    # the whole conversion in float32 (see Returns)
        if source == "[-1, 1]":
            x = (x + 1.0) / 2.0
        elif source == "[0, 255]":
            x = x / 255.0

    # 2. [0, 1] -> target
    if target == "[0, 1]":
        return x
    if target == "[-1, 1]":
        return 2.0 * x - 1.0
    if target == "[0, 255]":
        return 255.0 * x
    if target == "pil":
        if x.ndim == 4:
            if x.shape[0] != 1:
                raise ValueError(f"convert_image: target 'pil' takes one image, got a batch of {x.shape[0]}")
            x = x[0]
        array = (x.detach() * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        if array.shape[0] == 1:
            return Image.fromarray(array[0], mode="L")
        return Image.fromarray(array.transpose(1, 2, 0), mode="RGB")
    # The last two need RGB.
    channel_dim = x.ndim - 3
    if x.shape[channel_dim] != 3:
        raise ValueError(f"convert_image: target {target!r} needs 3 channels, got shape {tuple(x.shape)}")
    if target == "imagenet-norm":
        shape = (3, 1, 1) if x.ndim == 3 else (1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std
    # target == "y-channel": weights apply to RGB in [0, 1] (see YCBCR_Y_WEIGHTS)
    weights = torch.tensor(YCBCR_Y_WEIGHTS, dtype=x.dtype, device=x.device)
    return torch.matmul(x.movedim(channel_dim, -1), weights) + YCBCR_Y_OFFSET


# --------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------
def pil_to_array(im: Image.Image, keep_gray: bool = False) -> np.ndarray:
    """A PIL image of any mode -> uint8 array ``(H, W, 3)`` (``(H, W)`` for gray when keep_gray).

    The conversion rules are those of :func:`load_image`.
    """
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (Pillow opens 16-bit gray PNGs in these modes): 65535 -> 255.
        gray = np.asarray(im, dtype=np.float64)
        gray = np.clip(np.rint(gray / 257.0), 0, 255).astype(np.uint8)
    elif im.mode == "F":
        raise ValueError("32-bit float images are not supported (no agreed range)")
    elif im.mode in ("1", "L", "LA", "La"):
        gray = np.array(im.convert("L"))                # alpha, if any, is dropped
    else:
        gray = None
    if gray is not None:
        return gray if keep_gray else np.repeat(gray[:, :, None], 3, axis=2)
    # RGB, RGBA, P (palette, with or without transparency), CMYK, YCbCr, LAB, HSV, ...:
    # Pillow's own conversion to RGB, which drops alpha (colour values kept as stored).
    return np.array(im if im.mode == "RGB" else im.convert("RGB"))      # a writable copy


def load_image(path, keep_gray: bool = False) -> np.ndarray:
    """Read an image file as a uint8 array ``(H, W, 3)``, RGB.

    Conversion rules (one per file kind, so every reader of the kit sees the same pixels):

    - grayscale ('L', '1'): the gray value is copied to R, G and B (``keep_gray=True`` returns
      the ``(H, W)`` gray array instead: the metrics use it as the luma directly, see
      ``course_sr.metrics``);
    - alpha (RGBA, LA, palette with transparency): the alpha channel is DROPPED, the stored colour
      values are kept (no compositing on a background colour; what OpenCV's ``imread`` does);
    - palette ('P'): looked up to RGB;
    - 16-bit grayscale PNG: scaled to 8 bits by ``round(x / 257)`` (65535 -> 255). 16-bit RGB
      PNGs are reduced to 8 bits by Pillow itself while decoding (it keeps the high byte,
      ``x >> 8``, which is within 1 of ``round(x / 257)``);
    - CMYK, YCbCr and other colour modes: Pillow's conversion to RGB.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file is not a readable image: unknown format, corrupt or truncated data
            (the message names the file and gives Pillow's reason).
    """
    return with_image(path, lambda im: pil_to_array(im, keep_gray))


def with_image(path, read):
    """``read(im)`` on the decoded PIL image of ``path``, with :func:`load_image`'s checks and
    errors (FileNotFoundError; ValueError naming the file). The file is opened and decoded once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()                     # decode now, so truncated data fails here
            return read(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports broken files as any of these (SyntaxError: "broken PNG file").
        raise ValueError(f"cannot read image {path}: {err}") from err


# The kit's one list of image file extensions (compared lower-case), for every folder scan: data
# lists, evaluation folders, upscaling and rating inputs. ``.png`` first: where a stem exists with
# several extensions, scans that must pick one take the first. ``.webp`` is in it because Pillow
# decodes WebP, so ``load_image`` reads such a file like any other.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder) -> list[Path]:
    """The image files (``IMAGE_EXTENSIONS``) directly in ``folder``, sorted.

    Callers write one output per input named by its stem, so two inputs with the same stem are
    an error, as are a missing folder and one without images (messages name the folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder}")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise ValueError(f"{folder}: {stems[p.stem].name} and {p.name} would both be written as {p.stem}.png")
        stems[p.stem] = p
    return files


def save_image(path, image: np.ndarray) -> Path:
    """Write a uint8 ``(H, W, 3)`` or ``(H, W)`` array to ``path`` (format from the suffix).

    Parent folders are created. Returns the path.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"save_image({path}): expected a uint8 array, got {image.dtype} "
                        "(convert floats with convert_image and round first)")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"save_image({path}): expected shape (H, W, 3) or (H, W), got {image.shape}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def file_sha256(path) -> str:
    """The sha256 of a file's bytes as 64 lower-case hex digits, read in 4 MiB blocks (a 3.5 GB
    archive never sits in memory at once)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------
def config_get(config, key: str, default=None):
    """``config[key]`` for dicts, EasyDicts and plain objects alike; ``default`` when the key is
    absent OR its value is None (a config's None means "not set", so the default applies)."""
    value = config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
    return default if value is None else value


# --------------------------------------------------------------------------------------
# Pictures of results: aligned crops, labelled grids (uint8 images: to_uint8 below)
# --------------------------------------------------------------------------------------
def centre_crop_pair(lr: torch.Tensor, hr: torch.Tensor, hr_size: int, scale: int):
    """Aligned centre crops: ``hr`` (3, H, W) to at most ``hr_size`` (a multiple of ``scale``),
    ``lr`` (3, H/s, W/s) to ``hr_size / scale``. ``hr_size`` 0 keeps the whole images."""
    if not hr_size:
        return lr, hr
    c = hr_size // scale
    h, w = lr.shape[-2:]
    ch, cw = min(c, h), min(c, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    lr = lr[..., top:top + ch, left:left + cw]
    hr = hr[..., top * scale:(top + ch) * scale, left * scale:(left + cw) * scale]
    return lr, hr


def label_columns(grid: np.ndarray, widths, labels, height: int = 14) -> np.ndarray:
    """``grid`` (H, W, 3) uint8 with a white strip on top naming its columns (``widths`` px each;
    a label wider than its column is cut to its first word)."""
    strip = Image.new("RGB", (grid.shape[1], height), (255, 255, 255))
    draw, x = ImageDraw.Draw(strip), 0
    for width, text in zip(widths, labels):
        if draw.textlength(text) > width:
            text = text.split()[0]
        draw.text((x + max(0, (width - draw.textlength(text)) / 2), 1), text, fill=(0, 0, 0))
        x += width
    return np.concatenate([np.asarray(strip), grid], axis=0)


# --------------------------------------------------------------------------------------
# Training helpers
# --------------------------------------------------------------------------------------
class AverageMeter:
    """Running average of a number (loss, time per batch), as in the course template.

    ``update(val, n)`` adds ``val`` observed ``n`` times (e.g. a batch mean over ``n`` items);
    ``.val`` is the last value, ``.avg`` the weighted mean so far.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.val, self.sum, self.count, self.avg = 0.0, 0.0, 0, 0.0

    def update(self, val: float, n: int = 1):
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count if self.count else 0.0

    def __repr__(self):
        return f"AverageMeter(val={self.val:.4g}, avg={self.avg:.4g}, count={self.count})"


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device). Returns ``seed``.

    This makes runs repeatable on the same machine; bit-identical GPU results also need
    deterministic kernels (``torch.use_deterministic_algorithms``), which cost speed.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)               # also seeds every CUDA device
    return seed


# --------------------------------------------------------------------------------------
# Float images -> 8-bit pixels
# --------------------------------------------------------------------------------------
def to_uint8(img: torch.Tensor, source: str) -> np.ndarray:
    """A ``(3, H, W)`` float tensor in the range ``source`` -> an ``(H, W, 3)`` uint8 array.

    The one float -> 8-bit step of the kit (validation grids, saved SR images, the SR that
    evaluation scores): computed in float32 on the CPU whatever the input's dtype and device,
    scaled to ``[0, 255]`` by :func:`convert_image`, rounded to the nearest level (``torch.round``:
    halves to even), then clipped to ``[0, 255]`` (rounding before clipping gives the same
    levels as the other order: the bounds are whole numbers). ``source`` is a range of
    :func:`convert_image` (``'[0, 1]'``, ``'[-1, 1]'``, ``'[0, 255]'``). A ``(C, H, W)`` tensor
    with another channel count gives ``(H, W, C)``.
    """
    x = convert_image(img.detach().float().cpu(), source, "[0, 255]").round().clamp(0, 255)
    return x.to(torch.uint8).permute(1, 2, 0).numpy()
