class InputError(ValueError):
    """Bad input (a file, an image, a CSV row) described in one readable line."""
