"""Analysis of confirmed codings: agreement (`coefficients`: the pure measures over a units x
coders matrix; `agreement`: that matrix built from a study), frequency tables (`frequency`,
rendered by `tables`), charts (`chart`) and the HTML report (`report`); the methods analyses
(`cooccurrence`, `matrix`, `saturation`, `model_figure`, `summaries`, `memos`) count what
`counting` reads, write through `outputs` and appear in the report through `sections`."""
