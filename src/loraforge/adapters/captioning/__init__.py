"""Captioners: image-to-text models behind the ``Captioner`` port."""
