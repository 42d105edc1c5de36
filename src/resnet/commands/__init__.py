"""The ``resnet`` subcommands, one module each, listed in :mod:`resnet.cli`.

A command module has ``DESCRIPTION`` (its ``--help`` text), ``add_arguments(parser)`` (its options,
sub-subcommands included) and ``run(args) -> int`` (check the arguments, call the library, print).
``_arguments`` holds the options several commands share, ``train_options`` the flags made from
:class:`~resnet.train.config.TrainConfig`. Nothing below this package imports from it.
"""
