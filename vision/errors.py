class InputError(ValueError):
    """Bad input (a file, an image, a CSV row) described in one readable line. The service answers
    it with `status` (service/bentoml_compat.py); a subclass sets its own."""

    status = 400
