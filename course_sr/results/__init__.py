"""What a run produces for people: inference, evaluation tables, SR images, rating packs, reports."""
