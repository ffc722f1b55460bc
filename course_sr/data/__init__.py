"""Getting the data: downloads, the course's data lists, the embedded sample, the batch stream."""
