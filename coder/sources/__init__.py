"""What comes into a study: transcripts and their segments, codebooks (YAML, CSV, REFI-QDA
.qdc), codings CSVs. Each reader checks its whole file before anything is written."""
