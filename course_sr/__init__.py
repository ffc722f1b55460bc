"""course_sr: a course kit for 4x image super-resolution.

The top level is the course (read it in this order; each module reads in one sitting):

1. ``utils``      ``convert_image`` (the one place value ranges change), image files, small helpers
2. ``imresize``   MATLAB-exact ``imresize``: how the course's LR images are made
3. ``datasets``   ``SRDataset(split, config)``: the course's data lists, decoded once, aligned crops
4. ``models``     ``Generator`` (SRResNet), ``Discriminator``, ``TruncatedVGG19``, VDSR, the factories
5. ``solver``     losses, the SRResNet and SRGAN steps, SRGAN's two stages as a trainer, the
                  template's ``pretrain(...)`` / ``train(...)``
6. ``training``   the one training loop for every method (``python -m course_sr train``)
7. ``metrics``    PSNR/SSIM as SR papers report them (Y of rgb2ycbcr, shaved border)
8. ``config``     one documented config and its presets (``quick``, ``colab``, ``paper``, ...)

Everything else supports it, in four subpackages:

- ``data``       downloads (``download``, ``archives``, ``extract``), the course's lists (``lists``,
                 ``listfiles``, ``splits``), the embedded sample, the decoded-pixel store, the
                 resumable batch stream (``loader``)
- ``plumbing``   checkpoints, run records, the trainer protocol and resume rules (``trainer``),
                 mixed precision, several processes (``distributed``), the ``train`` command,
                 errors, real mode's places (``course``)
- ``results``    inference, evaluation tables (``--degradation``: ``degraded``), SR images and
                 comparison sheets (``upscale``), the human-rating pack and scores, the
                 experiment report, ``make demo``
- ``unpaired``   degradations, unpaired data, CycleGAN / dual networks, CycleSR and dual
                 regression and the paired baseline (``cyclesr``) and their comparison (``compare``)

Imports run one way (the core never imports ``results`` except ``results.inference``; no
subpackage imports back into a module that imports it): ``tests/test_layout.py`` checks it.
"""
__version__ = "0.1.0"
