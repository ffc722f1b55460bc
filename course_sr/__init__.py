"""course_sr: a course kit for 4x image super-resolution.

Map of the package (one idea per module; see README "Map of the package"):

- ``config``      one documented EasyDict config, presets (``quick``, ``colab``, ``paper`` ...)
- ``imresize``    MATLAB-exact ``imresize`` for numpy arrays and torch tensors
- ``metrics``     PSNR/SSIM as SR papers report them (Y of rgb2ycbcr, shaved border)
- ``utils``       ``convert_image`` (the one place ranges change), small helpers
- ``sample``      the embedded mini dataset (scikit-image photos, no download)
- ``data_lists``  ``create_data_lists``: the course's ``<split>_images.csv`` files
- ``download``    DIV2K / benchmark archives: resumable, checked, extracted atomically
- ``datasets``    ``SRDataset(split, config)``: decode once, aligned crops
- ``loader``      the batch stream: resumable, distributable sampler + shared-ring loader
- ``models``      ``Generator`` (SRResNet), ``Discriminator``, ``TruncatedVGG19``, factory
- ``solver``      losses, the SRResNet and SRGAN stages, ``train(...)`` of the template
- ``checkpoint``  atomic save, exact resume, ``load_generator``
- ``runner``      one schedule runner from a config (``python -m course_sr train``)
- ``distributed`` torchrun/DDP helpers, CPU-capable synchronised BatchNorm
- ``inference``   whole-image or tiled SR that fits memory
- ``evaluate``    five-set PSNR/SSIM tables (stdout, CSV, JSON)
- ``upscale`` / ``rating``  Set5 outputs, comparison sheets, human-rating packs and MOS
- ``degradations`` seeded synthetic "real camera" (blur, downsampling, noise, JPEG)
- ``unpaired``    (HR, clean LR, unrelated real LR) dataset for the unpaired setting
- ``cyclesr_nets`` CycleGAN transfer nets, PatchGAN, ImagePool, VDSR, the dual network
- ``cyclesr``     CycleSR and dual-regression training, and their comparison
- ``records``     run records: config.yaml, log.txt, TensorBoard events, history
- ``report`` / ``markdown_html``  Markdown (and HTML) experiment reports from run directories
- ``demo``        ``make demo``: the whole pipeline on the embedded images
"""
__version__ = "0.1.0"
