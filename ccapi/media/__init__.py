"""Services of the media routes (images, speech)."""
