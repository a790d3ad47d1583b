"""Image pipeline adapters: format sniffing, safe decoding and derived variants (Pillow)."""
