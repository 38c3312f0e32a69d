"""`make bench`: how fast the nightly job is, against a plain pandas baseline measured in the same run."""
