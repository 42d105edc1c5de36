"""The one exception type the command line turns into a one-line message."""


class ResNetError(ValueError):
    """Bad input from the user: a wrong option, a missing or corrupt file, an impossible shape.

    The message is a single line that names the option or file at fault; ``resnet`` prints it
    as ``resnet: error: <message>`` and exits with status 2 instead of showing a traceback.
    """
