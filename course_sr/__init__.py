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
- ``models``      ``Generator`` (SRResNet), ``Discriminator``, ``TruncatedVGG19``, factory
- ``solver``      losses, the SRResNet and SRGAN stages, ``train(...)`` of the template
- ``checkpoint``  atomic save, exact resume, ``load_generator``
- ``runner``      one schedule runner from a config (``python -m course_sr train``)
- ``inference``   whole-image or tiled SR that fits memory
- ``evaluate``    five-set PSNR/SSIM tables (stdout, CSV, JSON)
- ``upscale`` / ``rating``  Set5 outputs, comparison sheets, human-rating packs and MOS
- ``cyclesr``     CycleSR and dual regression for unpaired data
- ``report``      Markdown experiment reports from run directories
"""
__version__ = "0.1.0"
