"""Super-resolution without paired data: degradations, unpaired data, networks, CycleSR and dual regression."""
