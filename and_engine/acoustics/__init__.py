"""Signal helpers: measured acoustic descriptors of clips and the words that describe them."""
